#!/bin/sh
# Step cost of the logdet regularizer against the surrogate on the embedded default (align reward,
# LoRA rank 8, batch 32): (seconds of 80 steps - seconds of 20 steps)/60 so that graph compilation
# cancels, three alternating repetitions; summarize reports the median ratio.
set -e
HN=${HN:-hypernoise}
OUT=${OUT:-logdet-images}
mkdir -p "$OUT"
for rep in 1 2 3; do
  for reg in kl logdet; do
    for n in 20 80; do
      $HN train --reward align=1 --reg $reg --beta 0.2 --steps $n --checkpoint-every 0 --out "$OUT/cost$rep-$reg-$n" --quiet --json > "$OUT/cost$rep-$reg-$n.json"
    done
  done
done
echo done
