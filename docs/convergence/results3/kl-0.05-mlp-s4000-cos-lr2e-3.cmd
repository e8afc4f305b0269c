/tmp/hn train --reward align=1 --beta 0.05 --reg kl --steps 4000 --schedule cosine --lr 2e-3 --modulator mlp --out /tmp/conv/kl-0.05-mlp-s4000-cos-lr2e-3
