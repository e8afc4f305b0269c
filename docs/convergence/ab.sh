#!/bin/sh
# One A/B run of issue 19's convergence study on the embedded default: train a hypernetwork for
# align=1 at tilt temperature BETA with the given train flags, then score it (base and HyperNoise,
# the 320 evaluation images of `hypernoise tilt --seeds 32`). Each heavy step runs under the
# shared lock. Usage: HN=path/to/hypernoise OUT=folder sh docs/convergence/ab.sh NAME BETA [train flags...]
# writes OUT/NAME (the hypernetwork folder), OUT/NAME.train.json, OUT/NAME.eval.json and
# OUT/NAME.cmd (the command line). The reference: `hypernoise tilt ... > OUT/tilt.json` (see run.sh).
set -e
HN=${HN:-hypernoise}
OUT=${OUT:-convergence-runs}
LOCK=${LOCK:-/tmp/hn-heavy.lock}
name=$1
beta=$2
shift 2
mkdir -p "$OUT"
echo "$HN train --reward align=1 --beta $beta $* --out $OUT/$name" > "$OUT/$name.cmd"
flock "$LOCK" $HN train --reward align=1 --beta "$beta" "$@" --out "$OUT/$name" --force --quiet --json > "$OUT/$name.train.json"
flock "$LOCK" $HN eval --hypernet "$OUT/$name" --methods base,hypernoise --finetune-steps 0 --seeds 32 --json --quiet > "$OUT/$name.eval.json"
