#!/usr/bin/env bash
# Crash test of training-run folders (issue 12): kill -9 a training run at random moments KILLS
# times (default 20), resuming it each time, then let it finish. After every kill the folder must
# either load (sample --hypernet succeeds) or be refused with a one-line message and exit code 1
# or 2 (never a stack trace), and the resumed run must continue; the final weights must be
# bit-identical to those of an uninterrupted run with the same settings.
#
#   scripts/crashtest.sh [KILLS] [SEED]      (a few minutes on 2 cores; hold the heavy lock)
set -u
KILLS=${1:-20}
SEED=${2:-$RANDOM}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/hn-crashtest.XXXXXX)
BIN=$WORK/hypernoise
STCMP=$WORK/stcmp
TRAIN=(train --steps 3000 --batch 4 --warmup 5 --checkpoint-every 10 --seed 5 --quiet)
RANDOM=$SEED
fail() { echo "FAIL: $*"; echo "work folder kept: $WORK"; exit 1; }

cd "$ROOT" || exit 1
go build -o "$BIN" ./cmd/hypernoise && go build -o "$STCMP" ./scripts/stcmp || fail "build"
echo "crash test: $KILLS kills, seed $SEED, work folder $WORK"

# A clean refusal is exit 1 or 2 with one line on stderr and no Go stack trace.
clean_refusal() { # $1 exit code, $2 stderr file
  [[ $1 == 1 || $1 == 2 ]] && [[ $(wc -l < "$2") -le 1 ]] && ! grep -q -e 'goroutine ' -e '^panic' "$2"
}

"$BIN" "${TRAIN[@]}" --out "$WORK/ref" > "$WORK/ref.log" 2>&1 || fail "reference run: $(cat "$WORK/ref.log")"

RUN=$WORK/run
kills=0 refusals=0 loads=0 resumes=0
while (( kills < KILLS )); do
  args=("${TRAIN[@]}" --out "$RUN")
  [[ -f $RUN/train.safetensors ]] && { args+=(--resume); resumes=$((resumes + 1)); }
  "$BIN" "${args[@]}" > "$WORK/train.out" 2> "$WORK/train.err" &
  pid=$!
  # Random moment: 0.1 to 2.1 s after the start (start-up, steps, checkpoint writes). The run
  # is long enough (3000 steps) that KILLS kills come before it ends.
  sleep "$(printf '0.%03d' $((100 + RANDOM % 900)))"
  sleep $((RANDOM % 2))
  if kill -9 "$pid" 2> /dev/null; then
    wait "$pid" 2> /dev/null
    kills=$((kills + 1)) stuck=0
  else
    wait "$pid"; rc=$?
    # The run ended before the kill: it must have succeeded (or refused cleanly).
    if [[ $rc != 0 ]] && ! clean_refusal $rc "$WORK/train.err"; then
      fail "train exited $rc: $(cat "$WORK/train.err")"
    fi
    [[ $rc == 0 ]] && break
    # A clean refusal to resume must not repeat: the folder would be stuck.
    stuck=$((${stuck:-0} + 1))
    (( stuck > 3 )) && fail "train keeps refusing to resume: $(cat "$WORK/train.err")"
    continue
  fi
  # The folder loads or refuses cleanly.
  if [[ -f $RUN/hypernet.json || -f $RUN/hypernet.safetensors ]]; then
    "$BIN" sample --hypernet "$RUN" --prompt dress --n 2 --out "$WORK/s.png" > /dev/null 2> "$WORK/s.err"; rc=$?
    if [[ $rc == 0 ]]; then loads=$((loads + 1))
    elif clean_refusal $rc "$WORK/s.err"; then refusals=$((refusals + 1))
    else fail "sample after kill $kills exited $rc: $(cat "$WORK/s.err")"; fi
  fi
done
(( kills == KILLS )) || fail "the run finished after only $kills kills; raise --steps"
echo "killed $kills times ($resumes resumes); after a kill the hypernetwork loaded $loads times, was refused cleanly $refusals times"
leftover=$(find "$RUN" -name '.*.tmp*' | wc -l)
echo "temporary files left by the kills: $leftover (removed by the next write of the same file)"

args=("${TRAIN[@]}" --out "$RUN")
[[ -f $RUN/train.safetensors ]] && args+=(--resume)
"$BIN" "${args[@]}" > "$WORK/final.log" 2>&1 || fail "final run: $(cat "$WORK/final.log")"
"$BIN" sample --hypernet "$RUN" --prompt dress --n 2 --out "$WORK/s.png" > /dev/null 2>&1 || fail "final folder does not load"
left=$(find "$RUN" -name '.*.tmp*' | wc -l)
[[ $left == 0 ]] || fail "$left temporary files left after the final run"
cmp=$("$STCMP" "$WORK/ref/hypernet.safetensors" "$RUN/hypernet.safetensors") || fail "final weights differ from the uninterrupted run: $cmp"
echo "final weights vs uninterrupted run: $cmp"
grep -q '"steps": 3000' "$RUN/hypernet.json" || fail "result does not cover the 3000 steps"
echo "PASS"
rm -rf "$WORK"
