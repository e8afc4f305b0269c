/tmp/hn train --reward align=1 --beta 1 --reg kl --steps 4000 --schedule cosine --lr 2e-3 --modulator mlp --out /tmp/conv/kl-1-mlp-s4000-cos-lr2e-3
