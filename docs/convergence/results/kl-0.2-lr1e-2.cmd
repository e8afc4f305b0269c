hypernoise train --reward align=1 --beta 0.2 --reg kl --lr 1e-2 --out OUT/kl-0.2-lr1e-2
