hypernoise train --reward align=1 --beta 0.2 --reg kl --rank 32 --out OUT/kl-0.2-r32
