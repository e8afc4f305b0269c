#!/bin/sh
# Every run of issue 19's convergence study (docs/convergence.md), in the order they were made:
# the tilt reference, then the A/B runs (docs/convergence/ab.sh: train align=1 at a beta, eval base
# and HyperNoise on the 320 evaluation images), then the compositional runs. Each heavy command
# runs under the shared lock. Usage: HN=path/to/hypernoise OUT=folder sh docs/convergence/run.sh
# then: go run ./docs/convergence/summarize OUT docs/convergence
set -e
HN=${HN:-hypernoise}
OUT=${OUT:-convergence-runs}
LOCK=${LOCK:-/tmp/hn-heavy.lock}
export HN OUT LOCK
AB="sh $(dirname "$0")/ab.sh"
# Rounds 1-3 ran on the train defaults of their day (lr 1e-3, constant schedule; 300 steps in the
# first round, 1000 after it; before 2026-12-06), which FLAGS restores; the given flags override it.
FLAGS="--steps 300 --lr 1e-3 --schedule constant"
export FLAGS
mkdir -p "$OUT"
flock "$LOCK" $HN tilt --reward align=1 --beta 0.05,0.2,1 --pool 2048 --seeds 32 --json --quiet > "$OUT/tilt.json"
# First round: steps, learning rate, rank (constant schedule, surrogate kl at beta 0.2). Its figures
# in docs came from EVAL="--seeds 32" (320 images); ab.sh now defaults to 2560.
$AB kl-0.2-s300 0.2 --reg kl --steps 300
$AB kl-0.2-s1000 0.2 --reg kl --steps 1000
$AB kl-0.2-lr3e-3 0.2 --reg kl --lr 3e-3
$AB kl-0.2-lr1e-2 0.2 --reg kl --lr 1e-2
$AB kl-0.2-s1000-lr3e-3 0.2 --reg kl --steps 1000 --lr 3e-3
$AB kl-0.2-r32 0.2 --reg kl --rank 32
$AB kl-0.2-s2000-lr3e-3 0.2 --reg kl --steps 2000 --lr 3e-3
$AB logdet-0.2-s1000-lr3e-3 0.2 --reg logdet --steps 1000 --lr 3e-3
FLAGS="--steps 1000 --lr 1e-3 --schedule constant"
# Second round: schedule, objective scale (mean-sq at the same beta), batch, clipping.
$AB kl-0.2-s1000-cos 0.2 --reg kl --steps 1000 --schedule cosine
$AB kl-0.2-s1000-cos-lr3e-3 0.2 --reg kl --steps 1000 --schedule cosine --lr 3e-3
$AB ms-0.2-s1000-cos 0.2 --steps 1000 --schedule cosine
$AB kl-0.2-s1000-cos-b64 0.2 --reg kl --steps 1000 --schedule cosine --batch 64
$AB kl-0.2-s1000-cos-clip0 0.2 --reg kl --steps 1000 --schedule cosine --clip 0
$AB kl-0.2-s2000-cos 0.2 --reg kl --steps 2000 --schedule cosine
# Second round (2026-12-05, later; ab.sh's 2560-image evaluation): 4000 steps, schedule, modulator,
# batch, rank and the log-det objective at each beta. Tables and plots:
# go run ./docs/convergence/summarize OUT docs/convergence/round2
$AB kl-0.2-s4000 0.2 --reg kl --steps 4000
$AB logdet-0.2-s3000 0.2 --reg logdet --steps 3000
$AB kl-1-s4000 1 --reg kl --steps 4000
$AB logdet-1-s3000 1 --reg logdet --steps 3000
$AB kl-0.05-s4000 0.05 --reg kl --steps 4000
$AB logdet-0.05-s3000 0.05 --reg logdet --steps 3000
$AB kl-1-s4000-cos-lr3e-3 1 --reg kl --steps 4000 --schedule cosine --lr 3e-3
$AB kl-1-mlp-s4000 1 --reg kl --steps 4000 --modulator mlp
$AB kl-1-b128-s2000 1 --reg kl --steps 2000 --batch 128
$AB kl-1-r32-s2000 1 --reg kl --steps 2000 --rank 32
$AB kl-0.2-s4000-cos-lr3e-3 0.2 --reg kl --steps 4000 --schedule cosine --lr 3e-3
$AB kl-0.05-s4000-cos-lr3e-3 0.05 --reg kl --steps 4000 --schedule cosine --lr 3e-3
$AB kl-0.2-mlp-s4000 0.2 --reg kl --steps 4000 --modulator mlp
$AB kl-1-s4000-cos-lr2e-3 1 --reg kl --steps 4000 --schedule cosine --lr 2e-3
$AB kl-0.05-s4000-cos-lr2e-3 0.05 --reg kl --steps 4000 --schedule cosine --lr 2e-3
$AB kl-0.2-s4000-cos-lr2e-3 0.2 --reg kl --steps 4000 --schedule cosine --lr 2e-3
# Third round (2026-12-06; eval's share with the base's pool mean and a control variate): one
# setting for every beta. Tables: go run ./docs/convergence/summarize OUT docs/convergence/round3
$AB kl-0.05-s4000-cos-lr1.5e-3 0.05 --reg kl --steps 4000 --schedule cosine --lr 1.5e-3
$AB kl-0.2-s4000-cos-lr1.5e-3 0.2 --reg kl --steps 4000 --schedule cosine --lr 1.5e-3
for b in 0.05 1 0.2; do
  $AB kl-$b-mlp-s4000-cos-lr2e-3 $b --reg kl --steps 4000 --schedule cosine --lr 2e-3 --modulator mlp
done
$AB kl-0.05-s2000-cos-lr2e-3 0.05 --reg kl --steps 2000 --schedule cosine --lr 2e-3
$AB kl-0.05-s4000-cos-lr2e-3-clip0 0.05 --reg kl --steps 4000 --schedule cosine --lr 2e-3 --clip 0
$AB kl-0.05-s4000-cos-lr2e-3-r4 0.05 --reg kl --steps 4000 --schedule cosine --lr 2e-3 --rank 4
$AB kl-0.05-s4000-cos-lr1e-3 0.05 --reg kl --steps 4000 --schedule cosine --lr 1e-3
# The default since 2026-12-06 (4000 steps, cosine lr 2e-3), training seeds 1-3, nothing else given.
# Tables and plots: go run ./docs/convergence/summarize OUT docs/convergence/round4
FLAGS=""
for s in 1 2 3; do
  for b in 0.2 1 0.05; do
    $AB default-$b-seed$s $b --seed $s
  done
done
# After the default's seeds: the log-det objective kept to its second-order term at beta 0.05.
$AB logdet1-0.05-s3000-cos-lr2e-3 0.05 --reg logdet --terms 1 --steps 3000
$AB default-0.05-r16-seed1 0.05 --rank 16 --seed 1
