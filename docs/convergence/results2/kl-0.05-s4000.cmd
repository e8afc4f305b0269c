/tmp/hn train --reward align=1 --beta 0.05 --reg kl --steps 4000 --out /tmp/conv/kl-0.05-s4000
