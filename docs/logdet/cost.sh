#!/bin/sh
# Step cost of the logdet regularizer against the surrogate on the embedded default (align reward,
# LoRA rank 8, batch 32): (seconds of N2 steps - seconds of N1 steps)/(N2 - N1), so that graph
# compilation cancels, REPS alternating repetitions (defaults 3, 20, 80).
set -e
HN=${HN:-hypernoise}
OUT=${OUT:-logdet-images}
REPS=${REPS:-3}
N1=${N1:-20}
N2=${N2:-80}
mkdir -p "$OUT"
rep=1
while [ $rep -le $REPS ]; do
  for reg in kl logdet; do
    for n in $N1 $N2; do
      $HN train --reward align=1 --reg $reg --beta 0.2 --steps $n --checkpoint-every 0 --out "$OUT/cost$rep-$reg-$n" --quiet --json > "$OUT/cost$rep-$reg-$n.json"
      echo "rep $rep $reg $n: $(grep -o '"seconds": [0-9.]*' "$OUT/cost$rep-$reg-$n.json")"
    done
  done
  rep=$((rep + 1))
done
