HN19_PLAIN=1 hypernoise train --reward align=1 --beta 0.05 --modulator flow --lr 1e-3 --out OUT/flow-0.05-lr1e-3
