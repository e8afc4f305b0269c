/tmp/hn train --reward align=1 --beta 0.05 --reg kl --steps 2000 --schedule cosine --lr 2e-3 --out /tmp/conv/kl-0.05-s2000-cos-lr2e-3
