HN19_JEFF=10 hypernoise train --reward align=1 --beta 0.05 --modulator flow --hidden 128 --out OUT/flow-0.05-jeff10-h128
