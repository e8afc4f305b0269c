/tmp/hn train --reward align=1 --beta 0.2 --reg kl --steps 4000 --modulator mlp --out /tmp/conv/kl-0.2-mlp-s4000
