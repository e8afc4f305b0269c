/tmp/hn train --reward align=1 --beta 0.05 --reg kl --steps 4000 --schedule cosine --lr 2e-3 --clip 0 --out /tmp/conv/kl-0.05-s4000-cos-lr2e-3-clip0
