/tmp/hn train --reward align=1 --beta 1 --reg kl --steps 4000 --modulator mlp --out /tmp/conv/kl-1-mlp-s4000
