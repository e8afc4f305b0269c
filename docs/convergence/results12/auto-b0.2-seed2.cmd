hypernoise train --reward align=1 --beta 0.2  --seed 2 --out OUT/auto-b0.2-seed2
