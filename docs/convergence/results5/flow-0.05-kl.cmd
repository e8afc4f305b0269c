hypernoise train --reward align=1 --beta 0.05 --modulator flow --reg kl --out OUT/flow-0.05-kl
