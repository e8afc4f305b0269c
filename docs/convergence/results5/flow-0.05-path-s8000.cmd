hypernoise train --reward align=1 --beta 0.05 --modulator flow --steps 8000 --out OUT/flow-0.05-path-s8000
