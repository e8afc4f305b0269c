hypernoise train --reward align=1 --beta 0.15 --seed 3 --out OUT/default-0.15-seed3
