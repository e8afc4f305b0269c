/tmp/hn train --reward align=1 --beta 1 --reg kl --steps 2000 --batch 128 --out /tmp/conv/kl-1-b128-s2000
