hypernoise train --reward align=1 --beta 0.1 --seed 1 --out OUT/default-0.1-seed1
