/tmp/hn3 train --reward align=1 --beta 0.05  --seed 2 --out /tmp/conv4/default-0.05-seed2
