HN19_MM=-0.013775,0.05 hypernoise train --reward align=1 --beta 0.05 --seed 1 --out OUT/mm-0.05-seed1
