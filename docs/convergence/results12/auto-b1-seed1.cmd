hypernoise train --reward align=1 --beta 1  --seed 1 --out OUT/auto-b1-seed1
