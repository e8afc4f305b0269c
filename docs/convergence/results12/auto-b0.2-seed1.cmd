hypernoise train --reward align=1 --beta 0.2  --seed 1 --out OUT/auto-b0.2-seed1
