hypernoise train --reward align=1 --beta 0.15 --seed 2 --out OUT/default-0.15-seed2
