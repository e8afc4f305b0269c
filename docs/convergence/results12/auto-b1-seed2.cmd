hypernoise train --reward align=1 --beta 1  --seed 2 --out OUT/auto-b1-seed2
