hypernoise train --reward align=1 --beta 0.2 --reg kl --out OUT/kl-0.2-s300
