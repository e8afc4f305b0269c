/tmp/hn train --reward align=1 --beta 0.05 --reg kl --steps 4000 --schedule cosine --lr 1.5e-3 --out /tmp/conv/kl-0.05-s4000-cos-lr1.5e-3
