#!/bin/bash
# issue 19: seed 2 of the small fixture's tilt share at the default beta against the same SMC
# reference as seed 1 (docs/convergence/smc/small-mlp346-smc8.sh); ReNO is left out of the eval
# (its figures are seed 1's: the same evaluation noises and seeds).
cd /work/main/models/onnx/testdata/t2i-small
M=t2i_bmm_noaes.json
date
flock /tmp/hn-heavy.lock /usr/bin/time -v hypernoise train --model $M --reward clip=1 --out /tmp/small19s2/hn --budget 346 --batch 4 --seed 2 > /tmp/small19s2/train.txt 2> /tmp/small19s2/train.time
date
flock /tmp/hn-heavy.lock /usr/bin/time -v hypernoise eval --hypernet /tmp/small19s2/hn --methods base,hypernoise --seeds 8 --tilt-sampler smc --tilt-pool 8 --tilt-moves 2 --json > /tmp/small19s2/eval.json 2> /tmp/small19s2/eval.time
date
echo ALLDONE
