HN19_RAMP=2000 hypernoise train --reward align=1 --beta 0.05 --modulator flow --out OUT/flow-0.05-path-ramp2000
