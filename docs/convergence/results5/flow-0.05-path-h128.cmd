hypernoise train --reward align=1 --beta 0.05 --modulator flow --hidden 128 --out OUT/flow-0.05-path-h128
