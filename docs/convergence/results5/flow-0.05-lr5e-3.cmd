HN19_PLAIN=1 hypernoise train --reward align=1 --beta 0.05 --modulator flow --lr 5e-3 --out OUT/flow-0.05-lr5e-3
