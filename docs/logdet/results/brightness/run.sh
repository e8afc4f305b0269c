#!/bin/sh
HN=/tmp/hn-cur; OUT=/tmp/ld-br
EVAL="--methods base,hypernoise --finetune-steps 0 --seeds 32 --json --quiet"
for reg in kl logdet; do
  $HN train --reward brightness=1 --reg $reg --beta 0.01 --steps 300 --out $OUT/bright-$reg --quiet --json > $OUT/bright-$reg.train.json
  $HN eval --hypernet $OUT/bright-$reg $EVAL > $OUT/bright-$reg.eval.json
done
$HN tilt --reward brightness=1 --beta 0.01 --pool 1024 --seeds 32 --json --quiet > $OUT/bright-tilt.json
echo done
