#!/bin/sh
set -e
HN=${HN:-hypernoise}; OUT=${OUT:-logdet-brightness}; mkdir -p "$OUT"
EVAL="--methods base,hypernoise --finetune-steps 0 --seeds 32 --json --quiet"
for beta in 0.01 0.03 0.1; do
for reg in kl logdet; do
  $HN train --reward brightness=1 --reg $reg --beta $beta --steps 300 --out $OUT/bright-$reg-$beta --quiet --json > $OUT/bright-$reg-$beta.train.json
  $HN eval --hypernet $OUT/bright-$reg-$beta $EVAL > $OUT/bright-$reg-$beta.eval.json
done
done
$HN tilt --reward brightness=1 --beta 0.01,0.03,0.1 --pool 2048 --seeds 32 --json --quiet > $OUT/bright-tilt.json
echo done
