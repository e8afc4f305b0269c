hypernoise train --reward align=1 --beta 0.05  --seed 1 --out OUT/auto-b0.05-seed1
