#!/usr/bin/env bash
# The hostile-input suite, part two (issue 21): the cases that need the built command in its own
# process (signals, kills, FIFOs behind the supervisor, standard output) or that train or run the
# demo. Part one, the cheap cases, is cmd/hypernoise/hostile_test.go (in `go test ./...`).
#
#   scripts/hostile.sh [--quick]       (about 10 minutes on 2 cores, hold the heavy lock;
#                                       --quick skips the demo cases)
#
# Each case states its class, the exit code it expects and a regular expression its message must
# match (stderr; stdout and stderr for exit 0). A failing command must also print one line on
# stderr, no stack trace, and never hang (each case runs under `timeout`). It prints one line per
# failure and, at the end, "hostile.sh: P of N cases passed".
set -u
QUICK=0
[[ ${1:-} == --quick ]] && QUICK=1
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/hn-hostile.XXXXXX)
BIN=$WORK/hypernoise
H=$ROOT/cmd/hypernoise/testdata/hostile
cd "$ROOT" && go build -o "$BIN" ./cmd/hypernoise || { echo "build failed"; exit 1; }
export HYPERNOISE_MEM_BUDGET=${HYPERNOISE_MEM_BUDGET:-8GiB}
cd "$WORK" || exit 1
PASS=0 TOTAL=0 N=0
LIMIT=300 # seconds a case may run before it counts as a hang

# run CLASS CODE REGEX -- ARGS...: runs the command in a new folder $D (its working folder).
run() {
  local class=$1 code=$2 re=$3
  shift 4
  N=$((N + 1))
  D=$WORK/c$N
  mkdir -p "$D"
  ( cd "$D" && timeout -k 5 "$LIMIT" "$BIN" "$@" > "$D/out" 2> "$D/err" )
  RC=$?
  judge "$class" "$code" "$re" "$*"
}

# judge CLASS CODE REGEX WHAT: checks $RC and $D/err (and $D/out for exit 0).
judge() {
  local class=$1 code=$2 re=$3 what=${4:0:140}
  TOTAL=$((TOTAL + 1))
  local msg
  if [[ $code == 0 ]]; then msg=$(cat "$D/out" "$D/err" | tr -d '\0'); else msg=$(cat "$D/err"); fi
  local why=""
  if [[ $RC == 124 || $RC == 137 ]] && [[ $code != 137 ]]; then why="hung (killed after ${LIMIT}s)"
  elif [[ $RC != "$code" ]]; then why="exit $RC, want $code"
  elif ! grep -Eq -- "$re" <<< "$msg"; then why="message does not match /$re/"
  elif grep -Eq 'goroutine [0-9]+ \[|\.go:[0-9]+|^panic:' <<< "$msg"; then why="stack trace"
  elif [[ $code != 0 && $(grep -c '' "$D/err") -gt 1 ]]; then why="more than one line on stderr"
  fi
  if [[ -n $why ]]; then
    echo "FAIL [$class] $what: $why; stderr: $(head -c 300 "$D/err")"
    return 1
  fi
  PASS=$((PASS + 1))
}

# check WHAT CONDITION...: an extra condition on a case's result (counted as its own case).
check() {
  local what=$1
  shift
  TOTAL=$((TOTAL + 1))
  if "$@"; then PASS=$((PASS + 1)); else echo "FAIL [check] $what"; fi
}

# bg CLASS CODE REGEX SIGNAL DELAY -- ARGS...: starts the command, sends SIGNAL after DELAY seconds.
bg() {
  local class=$1 code=$2 re=$3 sig=$4 delay=$5
  shift 6
  N=$((N + 1))
  D=$WORK/c$N
  mkdir -p "$D"
  ( cd "$D" && exec "$BIN" "$@" > "$D/out" 2> "$D/err" ) &
  local pid=$!
  sleep "$delay"
  if [[ $sig == KILL ]]; then # kill -9 the worker (the supervisor's child), as a user's kill would
    local child
    child=$(pgrep -P "$pid" | head -1)
    kill -s KILL "${child:-$pid}" 2> /dev/null
  else # SIGINT and SIGTERM go to the supervisor, which forwards them
    kill -s "$sig" "$pid" 2> /dev/null
  fi
  wait "$pid"
  RC=$?
  judge "$class" "$code" "$re" "$* (after $sig at ${delay}s)"
}

# ---------------------------------------------------------------- non-finite values from models
for s in reward_nan reward_inf reward_big; do
  run non-finite 1 "no candidate with a finite reward" -- sample --model "$H/spec_$s.json" --prompt all --n 4 --method best-of-n --out o.png
  check "no PNG after best-of-n with $s" test ! -e "$D/o.png"
  run non-finite 1 "no iterate with a finite reward" -- sample --model "$H/spec_$s.json" --prompt circle --n 4 --method reno --reno-steps 5 --out o.png
  run non-finite 1 "no hypernetwork was written" -- train --model "$H/spec_$s.json" --steps 10 --batch 4 --out hn --quiet
  check "no hypernetwork after train with $s" test ! -e "$D/hn/hypernet.safetensors"
  run non-finite 1 "no hypernetwork was written" -- train --model "$H/spec_$s.json" --modulator mlp --steps 10 --batch 4 --out hn --quiet
done
run non-finite 1 'generator "hostile-gen-nan" \(gen_nan.onnx' -- sample --model "$H/spec_gen_nan.json" --prompt all --n 4 --out o.png
check "no PNG from a NaN generator" test ! -e "$D/o.png"
run non-finite 1 "best-of-N: the generator" -- sample --model "$H/spec_gen_nan.json" --prompt circle --n 4 --method best-of-n --out o.png
run non-finite 1 "ReNO: the generator" -- sample --model "$H/spec_gen_nan.json" --prompt circle --n 4 --method reno --reno-steps 3 --out o.png
run non-finite 1 "no hypernetwork was written" -- train --model "$H/spec_gen_nan.json" --steps 10 --batch 4 --out hn --quiet
run non-finite 1 "reward_half.onnx" -- sample --model "$H/spec_reward_half.json" --prompt all --n 8 --method reno --reno-steps 3 --out o.png
run non-finite 1 "no hypernetwork was written" -- train --model "$H/spec_reward_half.json" --steps 20 --batch 4 --out hn --quiet
# A trained hypernetwork, then every method on models whose reward or generator fails.
run non-finite 0 "wrote" -- train --model "$H/spec_ok.json" --steps 20 --batch 4 --out "$WORK/hn-ok" --quiet
# The broken files behind a spec of the hypernetwork's generator name (a hypernetwork is bound to
# its generator's name and weights), so the methods reach the broken reward.
for s in reward_nan reward_big gen_nan; do
  mkdir -p "$WORK/as-ok" && cp "$H"/*.onnx "$WORK/as-ok/" &&
    sed 's|"name": *"[^"]*"|"name": "hostile-ok"|' "$H/spec_$s.json" > "$WORK/as-ok/spec_$s.json"
done
for s in reward_nan reward_big; do
  run non-finite 1 "$s.onnx" -- eval --model "$WORK/as-ok/spec_$s.json" --hypernet "$WORK/hn-ok" --seeds 2 --reno-steps 2 --warm-steps 1 --small-n 2 --json
  check "eval --json with $s prints no partial JSON" test ! -s "$D/out"
done
run non-finite 1 'generator "hostile-ok" \(gen_nan.onnx' -- sample --model "$WORK/as-ok/spec_gen_nan.json" --hypernet "$WORK/hn-ok" --prompt circle --n 2 --out o.png

# ---------------------------------------------------------------- input files through the binary
mkfifo "$WORK/fifo.json"
run "input files" 2 "FIFO" -- sample --model "$WORK/fifo.json" --prompt circle
run "input files" 2 "FIFO" -- train --model "$WORK/fifo.json" --out hn --steps 2
run "input files" 2 'unknown model "/dev/urandom"' -- sample --model /dev/urandom --prompt circle
ln -s /dev/urandom "$WORK/urandom.json"
run "input files" 2 "character device" -- sample --model "$WORK/urandom.json" --prompt circle
mkdir -p "$WORK/hn-fifo" && cp "$WORK/hn-ok/hypernet.json" "$WORK/hn-fifo/" 2> /dev/null
mkfifo "$WORK/hn-fifo/hypernet.safetensors"
run "input files" 2 "FIFO" -- sample --model "$H/spec_ok.json" --hypernet "$WORK/hn-fifo" --prompt circle --n 2 --out o.png
mkdir -p "$WORK/hn-zero" && cp "$WORK/hn-ok/hypernet.json" "$WORK/hn-zero/" 2> /dev/null
ln -s /dev/zero "$WORK/hn-zero/hypernet.safetensors"
run "input files" 2 "character device" -- sample --model "$H/spec_ok.json" --hypernet "$WORK/hn-zero" --prompt circle --n 2 --out o.png
mkdir -p "$WORK/hn-pad" && cp "$WORK/hn-ok/"hypernet.* "$WORK/hn-pad/" 2> /dev/null
head -c 1000000 /dev/zero >> "$WORK/hn-pad/hypernet.safetensors"
run "input files" 1 "its header describes" -- sample --model "$H/spec_ok.json" --hypernet "$WORK/hn-pad" --prompt circle --n 2 --out o.png
mkdir -p "$WORK/hn-cut" && cp "$WORK/hn-ok/"hypernet.* "$WORK/hn-cut/" 2> /dev/null
truncate -s -100 "$WORK/hn-cut/hypernet.safetensors"
run "input files" 1 "its header describes|not a valid safetensors" -- sample --model "$H/spec_ok.json" --hypernet "$WORK/hn-cut" --prompt circle --n 2 --out o.png
sed "s|\"gen.onnx\"|\"$H/gen.onnx\"|; s|\"reward.onnx\"|\"$H/reward.onnx\"|" "$H/spec_ok.json" > "$WORK/abs.json"
run "input files" 0 "wrote" -- sample --model "$WORK/abs.json" --prompt circle --n 2 --out o.png
sed "s|\"gen.onnx\"|\"/etc/hn-nonexistent/gen.onnx\"|" "$H/spec_ok.json" > "$WORK/abs-missing.json"
run "input files" 1 "^hypernoise sample: /etc/hn-nonexistent/gen.onnx: no such file" -- sample --model "$WORK/abs-missing.json" --prompt circle --out o.png

# ---------------------------------------------------------------- outputs through the binary
run outputs 2 "character device" -- sample --prompt dress --n 1 --out /dev/null
check "/dev/null is still a character device" test -c /dev/null
ln -s /dev/null "$WORK/null.png"
run outputs 2 "refusing to replace it" -- sample --prompt dress --n 1 --out "$WORK/null.png"
check "the link to /dev/null is still a link" test -L "$WORK/null.png"
# A link to /proc/self/fd/1 is a link to whatever standard output is: here the case's own out file,
# a regular file, which the PNG replaces (atomically; the "wrote" line goes to the replaced file).
ln -s /proc/self/fd/1 "$WORK/stdout.png"
run outputs 0 "PNG" -- sample --prompt dress --n 1 --out "$WORK/stdout.png"
check "the link to /proc/self/fd/1 is still a link" test -L "$WORK/stdout.png"
run outputs 2 "more than the file system allows" -- sample --prompt dress --n 1 --out "$(printf 'd/%.0s' $(seq 2100))o.png"
check "a refused long path left no folder" test ! -e "$D/d"
run outputs 2 "more than the file system allows" -- sample --model "$H/spec_ok.json" --prompt circle --n 1 --out "$(printf 'd/%.0s' $(seq 2100))o.png"
check "a refused long path left no folder (imported model)" test ! -e "$D/d"

# ---------------------------------------------------------------- messages: kills and interrupts
TRAIN=(train --steps 3000 --batch 4 --warmup 5 --checkpoint-every 10 --quiet --out run)
bg messages 1 "killed \(SIGKILL\) by another process" KILL 4 -- "${TRAIN[@]}"
check "a kill -9 keeps a resumable checkpoint" test -f "$D/run/train.safetensors"
bg messages 130 "interrupted.*kept.*--resume" INT 4 -- "${TRAIN[@]}"
check "Ctrl-C keeps a resumable checkpoint" test -f "$D/run/train.safetensors"
bg messages 143 "terminated" TERM 4 -- "${TRAIN[@]}"
bg messages 130 "interrupted" INT 3 -- sample --prompt all --n 512 --method reno --out o.png

# ---------------------------------------------------------------- the main job, twice
if [[ $QUICK == 0 ]]; then
  DEMO=(demo --quick --no-compositional --quiet --out "$WORK/demo")
  run "run twice" 0 "report:" -- "${DEMO[@]}"
  run "run twice" 0 "report:" -- "${DEMO[@]}"
  check "a second demo reused the first one's runs" grep -q "continuing the run a previous demo left" "$D/err"
  run "run twice" 0 "report:" -- "${DEMO[@]}" --force
  run "run twice" 2 "cannot continue it: pass --force" -- demo --no-compositional --quiet --out "$WORK/demo"
  bg "run twice" 130 "interrupted; (kept in .*run the same command again|no training run was kept yet)" INT 8 -- demo --quick --no-compositional --quiet --out "$WORK/demo2"
  run "run twice" 0 "report:" -- demo --quick --no-compositional --quiet --out "$WORK/demo2"
fi

echo "hostile.sh: $PASS of $TOTAL cases passed (work folder $WORK)"
[[ $PASS == "$TOTAL" ]]
