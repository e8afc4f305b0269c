hypernoise train --reward align=1 --beta 0.2 --reg logdet --steps 1000 --lr 3e-3 --out OUT/logdet-0.2-s1000-lr3e-3
