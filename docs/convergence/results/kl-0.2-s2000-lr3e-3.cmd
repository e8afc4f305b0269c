hypernoise train --reward align=1 --beta 0.2 --reg kl --steps 2000 --lr 3e-3 --out OUT/kl-0.2-s2000-lr3e-3
