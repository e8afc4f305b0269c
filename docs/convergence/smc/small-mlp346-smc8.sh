#!/bin/bash
# issue 19: the small fixture's tilt share at the default beta (1/1024) against an SMC reference,
# for the default modulator (MLP) trained 346 steps of batch 4 (the CPU budget of the earlier runs)
cd /work/main/models/onnx/testdata/t2i-small
M=t2i_bmm_noaes.json
date
flock /tmp/hn-heavy.lock /usr/bin/time -v hypernoise train --model $M --reward clip=1 --out /tmp/small19/hn --budget 346 --batch 4 > /tmp/small19/train.txt 2> /tmp/small19/train.time
date
flock /tmp/hn-heavy.lock /usr/bin/time -v hypernoise eval --hypernet /tmp/small19/hn --methods base,reno,hypernoise --seeds 8 --tilt-sampler smc --tilt-pool 8 --tilt-moves 2 --json > /tmp/small19/eval.json 2> /tmp/small19/eval.time
date
