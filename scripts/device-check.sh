#!/usr/bin/env bash
# scripts/device-check.sh: everything a session lent the GPU machine runs, in one call (< 8 minutes):
# it builds hypernoise, checks that --backend cuda finds its plugin by itself, times the benchmarks on
# XLA CUDA in float32 and bf16 beside the PyTorch twins on the same GPU, and writes every figure to one
# JSON file.
#
#   scripts/device-check.sh [--out FILE] [--sizes small,tiny] [--sd-turbo]   # on the GPU machine
#   scripts/device-check.sh --cpu [--out FILE]                               # the same code paths on the
#                                         pure-Go backend and PyTorch CPU, smaller, to test the script
#
# Each part runs under its own time limit; a part that fails or runs out of time is recorded with its
# error and the rest still run; parts are skipped (and recorded as skipped) once the total nears 7.5
# minutes, so the parts run most important first. Measured (see docs/gpu.md): the doctor's CUDA plugin and matmul; `train --steps 1` and
# `--steps 300` on the embedded default (compile time and step time apart); `bench` on the embedded
# default; the HyperNoise step on the T2I fixtures (tiny, small; sd-turbo with --sd-turbo) at batch
# 1/2/4 for ours (bench --model) and PyTorch's (scripts/gpu/torch_twin.py), each in f32 and bf16, with
# wall time and peak GPU memory of each process (nvidia-smi, sampled every 0.2 s).
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
MODE=cuda OUT=device-check.json SIZES=small,tiny SDTURBO=0
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) MODE=cpu ;;
    --out) OUT=$2; shift ;;
    --sizes) SIZES=$2; shift ;;
    --sd-turbo) SDTURBO=1 ;;
    *) echo "usage: scripts/device-check.sh [--cpu] [--out FILE] [--sizes tiny,small] [--sd-turbo]" >&2; exit 2 ;;
  esac
  shift
done
W=$(mktemp -d /tmp/device-check.XXXXXX)
START=$(date +%s)
BUDGET=450
PY=""
for p in "${PYTHON:-}" python3 /usr/bin/python3; do
  if [ -n "$p" ] && "$p" -c 'import torch' 2>/dev/null; then PY=$p; break; fi
done
if [ "$MODE" = cpu ]; then
  BACKEND=go DEV=cpu STEPS=2 TRAIN=5 MM=256 BATCHES="2" SIZES=tiny DTYPES_TORCH="f32"
else
  BACKEND=cuda DEV=cuda STEPS=10 TRAIN=300 MM=4096 BATCHES="2 1 4" DTYPES_TORCH="f32 bf16"
fi
# The T2I parts measure memory: XLA's client then allocates as it goes instead of preallocating.
MEMBACKEND=$BACKEND
[ "$MODE" = cuda ] && MEMBACKEND=cuda:preallocate=false

# part NAME LIMIT CMD...: runs CMD with a time limit; stdout to NAME.out, stderr to NAME.err, and
# NAME.meta holds its exit code, wall seconds and peak GPU memory (MiB, cuda mode).
part() {
  local name=$1 limit=$2; shift 2
  local left=$((BUDGET - ($(date +%s) - START)))
  if [ "$left" -lt 20 ]; then echo "{\"skipped\": \"time budget\"}" > "$W/$name.meta"; return; fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "device-check: $name ($*)" >&2
  local t0 peak=0
  t0=$(date +%s.%N)
  timeout "$limit" "$@" > "$W/$name.out" 2> "$W/$name.err" &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$MODE" = cuda ] && command -v nvidia-smi >/dev/null; then
      local m
      m=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null | sort -n | tail -1)
      [ -n "$m" ] && [ "$m" -gt "$peak" ] && peak=$m
    fi
    sleep 0.2
  done
  wait "$pid"
  local rc=$?
  echo "{\"rc\": $rc, \"wall_s\": $(awk "BEGIN{print $(date +%s.%N) - $t0}"), \"gpu_memory_used_peak_mib\": $peak, \"limit_s\": $limit}" > "$W/$name.meta"
}

part build 240 go build -o "$W/hypernoise" ./cmd/hypernoise
HN=$W/hypernoise
part doctor 60 "$HN" doctor --json --backend "$BACKEND" --matmul-size "$MM"
part train_1 120 "$HN" train --backend "$BACKEND" --steps 1 --checkpoint-every 0 --quiet --json --out "$W/train1"
part train_n 240 "$HN" train --backend "$BACKEND" --steps "$TRAIN" --checkpoint-every 0 --quiet --json --out "$W/trainN"
part train_n_bf16 240 "$HN" train --backend "$BACKEND" --dtype bf16 --steps "$TRAIN" --checkpoint-every 0 --quiet --json --out "$W/trainNbf"
for size in ${SIZES//,/ } $([ "$SDTURBO" = 1 ] && echo sd-turbo); do
  dir=models/onnx/testdata
  if [ "$size" != tiny ]; then
    dir=models/onnx/testdata/t2i-$size
    [ -f "$dir/t2i.json" ] || part "make_$size" 240 "$PY" models/onnx/testdata/make_t2i.py --size "$size"
  fi
  spec=$W/t2i_$size.json
  # The LoRA hypernetwork copies the UNet whose output is `eps`; the spec's backbone is set to it.
  "${PY:-python3}" - "$ROOT/$dir" "$spec" <<'PYEOF' || continue
import json, os, sys
d, out = sys.argv[1], sys.argv[2]
s = json.load(open(os.path.join(d, "t2i.json")))
s["generator"]["backbone_output"] = "eps"
for part in [s["generator"]] + list(s["rewards"].values()):
    part["onnx"] = os.path.join(d, part["onnx"])
json.dump(s, open(out, "w"))
PYEOF
  for b in $BATCHES; do
    for dt in f32 bf16; do
      name="ours_${size}_b${b}_$dt"
      part "$name" 240 "$HN" bench --model "$spec" --backend "$MEMBACKEND" --dtype "$dt" --reward clip=1 \
        --batch "$b" --rank 4 --steps "$STEPS" --json
      if [ "$MEMBACKEND" != "$BACKEND" ] && ! grep -q '"rc": 0' "$W/$name.meta"; then
        MEMBACKEND=$BACKEND # the option failed: the other parts do without it
        part "${name}_prealloc" 240 "$HN" bench --model "$spec" --backend "$BACKEND" --dtype "$dt" --reward clip=1 \
          --batch "$b" --rank 4 --steps "$STEPS" --json
      fi
    done
    for dt in $DTYPES_TORCH; do
      [ -n "$PY" ] && part "torch_${size}_b${b}_$dt" 180 "$PY" scripts/gpu/torch_twin.py t2i --size "$size" --batch "$b" \
        --rank 4 --steps "$STEPS" --device "$DEV" --dtype "$dt"
    done
  done
done

part bench_default 180 "$HN" bench --backend "$BACKEND" --json --no-torch --steps "$STEPS"
for dt in $DTYPES_TORCH; do
  [ -n "$PY" ] && part "torch_default_$dt" 120 "$PY" scripts/gpu/torch_twin.py default --device "$DEV" --dtype "$dt"
done

"${PY:-python3}" - "$W" "$OUT" "$MODE" "$START" <<'PYEOF'
import glob, json, os, platform, sys, time
w, out, mode, start = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
res = {}
for meta in sorted(glob.glob(os.path.join(w, "*.meta"))):
    name = os.path.basename(meta)[:-5]
    r = json.load(open(meta))
    text = open(os.path.join(w, name + ".out")).read() if os.path.exists(os.path.join(w, name + ".out")) else ""
    try:
        r["result"] = json.loads(text) if text.strip() else None
    except ValueError:
        try:
            r["result"] = json.loads(text.strip().splitlines()[-1])
        except ValueError:
            r["output_tail"] = text[-400:]
    if r.get("rc", 0) != 0 and os.path.exists(os.path.join(w, name + ".err")):
        r["error"] = open(os.path.join(w, name + ".err")).read()[-600:]
    res[name] = r
def seconds(k):
    try:
        return res[k]["result"]["result"]["seconds"], res[k]["result"]["result"]["steps"]
    except (KeyError, TypeError):
        return None
derived = {}
for key in ("train_n", "train_n_bf16"):
    one, many = seconds("train_1"), seconds(key)
    if one and many and many[1] > 1:
        step = (many[0] - one[0]) / (many[1] - 1)
        derived[key] = {"step_ms": 1e3 * step, "compile_and_first_step_s": one[0] - step,
                        "how": "step = (seconds(train --steps N) - seconds(train --steps 1)) / (N - 1)"}
json.dump({"mode": mode, "host": platform.node(), "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "total_s": time.time() - start, "parts": res, "derived": derived}, open(out, "w"), indent=1)
print("device-check: wrote %s (%d parts, %.0f s)" % (out, len(res), time.time() - start), file=sys.stderr)
PYEOF
