#!/bin/sh
# Follow-up to images.sh: (1) the size of the volume term the surrogate drops, from the logdet
# runs' training summary (the same runs as images.sh, which are deterministic); (2) a reward that
# the surrogate can over-tilt, brightness, at beta 0.01, with its resampled reference.
set -e
HN=${HN:-hypernoise}
OUT=${OUT:-logdet-images}
mkdir -p "$OUT"
EVAL="--methods base,hypernoise --finetune-steps 0 --seeds 32 --json --quiet"
for beta in 0.05 0.2 1; do
  $HN train --reward align=1 --reg logdet --beta $beta --steps 300 --out "$OUT/series-logdet-$beta" --quiet --json > "$OUT/series-logdet-$beta.train.json"
done
for reg in kl logdet; do
  $HN train --reward brightness=1 --reg $reg --beta 0.01 --steps 300 --out "$OUT/bright-$reg" --quiet --json > "$OUT/bright-$reg.train.json"
  $HN eval --hypernet "$OUT/bright-$reg" $EVAL > "$OUT/bright-$reg.eval.json"
done
$HN tilt --reward brightness=1 --beta 0.01 --pool 2048 --seeds 32 --json --quiet > "$OUT/bright-tilt.json"
echo done
