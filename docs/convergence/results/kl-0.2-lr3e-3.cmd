hypernoise train --reward align=1 --beta 0.2 --reg kl --lr 3e-3 --out OUT/kl-0.2-lr3e-3
