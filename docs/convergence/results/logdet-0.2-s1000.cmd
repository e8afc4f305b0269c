hypernoise train --reward align=1 --beta 0.2 --reg logdet --steps 1000 --out OUT/logdet-0.2-s1000
