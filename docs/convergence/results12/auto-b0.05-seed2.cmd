hypernoise train --reward align=1 --beta 0.05  --seed 2 --out OUT/auto-b0.05-seed2
