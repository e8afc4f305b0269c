/tmp/hn3 train --reward align=1 --beta 0.05  --seed 1 --out /tmp/conv4/default-0.05-seed1
