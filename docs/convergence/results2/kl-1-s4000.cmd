/tmp/hn train --reward align=1 --beta 1 --reg kl --steps 4000 --out /tmp/conv/kl-1-s4000
