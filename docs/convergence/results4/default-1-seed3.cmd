/tmp/hn3 train --reward align=1 --beta 1  --seed 3 --out /tmp/conv4/default-1-seed3
