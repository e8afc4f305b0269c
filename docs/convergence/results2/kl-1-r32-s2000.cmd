/tmp/hn train --reward align=1 --beta 1 --reg kl --steps 2000 --rank 32 --out /tmp/conv/kl-1-r32-s2000
