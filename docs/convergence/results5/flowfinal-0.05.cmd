hypernoise train --reward align=1 --beta 0.05 --modulator flow --out OUT/flowfinal-0.05
