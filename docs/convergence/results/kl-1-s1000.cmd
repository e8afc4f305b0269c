hypernoise train --reward align=1 --beta 1 --reg kl --steps 1000 --out OUT/kl-1-s1000
