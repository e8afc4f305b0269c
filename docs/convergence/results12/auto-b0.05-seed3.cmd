hypernoise train --reward align=1 --beta 0.05  --seed 3 --out OUT/auto-b0.05-seed3
