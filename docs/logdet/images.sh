#!/bin/sh
# Issue 11's image experiment on the embedded Fashion default (reward align=1, LoRA rank 8,
# 300 AdamW steps of batch 32 each): the paper's surrogate (kl) against the stochastic log-det KL
# (logdet) at three betas, a tilt dial (MLP conditioned on beta, logdet, beta in [0.05, 1]) scored
# at five betas, and the self-normalized importance-sampling reference of each tilt. The step
# cost is measured by go run ./docs/logdet/stepcost (the two objectives alternated in one
# process). Usage: HN=path/to/hypernoise OUT=folder sh docs/logdet/images.sh
set -e
HN=${HN:-hypernoise}
OUT=${OUT:-logdet-images}
mkdir -p "$OUT"
EVAL="--methods base,hypernoise --finetune-steps 0 --seeds 32 --json --quiet"
for beta in 0.05 0.2 1; do
  for reg in kl logdet; do
    $HN train --reward align=1 --reg $reg --beta $beta --steps 300 --lr 1e-3 --schedule constant --out "$OUT/$reg-$beta" --quiet --json > "$OUT/$reg-$beta.train.json"
    $HN eval --hypernet "$OUT/$reg-$beta" $EVAL > "$OUT/$reg-$beta.eval.json"
  done
done
$HN train --reward align=1 --modulator dial --reg logdet --beta-range 0.05,1 --steps 600 --lr 1e-3 --schedule constant --out "$OUT/dial" --quiet --json > "$OUT/dial.train.json"
for beta in 0.05 0.1 0.2 0.5 1; do
  $HN eval --hypernet "$OUT/dial" --beta $beta $EVAL > "$OUT/dial-$beta.eval.json"
done
# The learning-free reference of each tilt (importance resampling of 2048 base samples per prompt),
# on the same 320 evaluation seeds.
$HN tilt --reward align=1 --beta 0.05,0.1,0.2,0.5,1 --pool 2048 --seeds 32 --json --quiet > "$OUT/tilt.json"
echo done
