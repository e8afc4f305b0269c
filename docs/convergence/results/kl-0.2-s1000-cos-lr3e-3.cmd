hypernoise train --reward align=1 --beta 0.2 --reg kl --steps 1000 --schedule cosine --lr 3e-3 --out OUT/kl-0.2-s1000-cos-lr3e-3
