#!/bin/sh
# One A/B run of issue 19's convergence study on the embedded default: train a hypernetwork for
# align=1 at tilt temperature BETA with the given train flags, then score it (base and HyperNoise,
# 2560 evaluation images: 256 seeds per prompt, seed 2025, the tilt reference resampled from a pool
# of 8192 base samples per prompt; EVAL overrides those flags). Each heavy step runs under the
# shared lock. Usage: HN=path/to/hypernoise OUT=folder sh docs/convergence/ab.sh NAME BETA [train flags...]
# writes OUT/NAME (the hypernetwork folder), OUT/NAME.train.json, OUT/NAME.eval.json and
# OUT/NAME.cmd (the command line). FLAGS (optional) go before the given flags, which override them.
# MODEL (a --model value) and REWARD (default align=1) run the same study on another model, e.g.
# MODEL=models/onnx/testdata/t2i_emb.json REWARD=clip=1 EVAL="--seeds 16 --tilt-pool 1024".
set -e
HN=${HN:-hypernoise}
OUT=${OUT:-convergence-runs}
LOCK=${LOCK:-/tmp/hn-heavy.lock}
EVAL=${EVAL:---seeds 256 --tilt-pool 8192}
REWARD=${REWARD:-align=1}
MODELFLAG=${MODEL:+--model $MODEL}
name=$1
beta=$2
shift 2
mkdir -p "$OUT"
echo "$HN train $MODELFLAG --reward $REWARD --beta $beta $FLAGS $* --out $OUT/$name" > "$OUT/$name.cmd"
flock "$LOCK" $HN train $MODELFLAG --reward "$REWARD" --beta "$beta" $FLAGS "$@" --out "$OUT/$name" --force --quiet --json > "$OUT/$name.train.json"
flock "$LOCK" $HN eval $MODELFLAG --hypernet "$OUT/$name" --methods base,hypernoise --finetune-steps 0 $EVAL --json --quiet > "$OUT/$name.eval.json"
