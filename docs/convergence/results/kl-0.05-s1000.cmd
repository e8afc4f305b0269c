hypernoise train --reward align=1 --beta 0.05 --reg kl --steps 1000 --out OUT/kl-0.05-s1000
