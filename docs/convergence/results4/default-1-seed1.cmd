/tmp/hn3 train --reward align=1 --beta 1  --seed 1 --out /tmp/conv4/default-1-seed1
