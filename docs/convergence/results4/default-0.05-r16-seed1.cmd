/tmp/hn4 train --reward align=1 --beta 0.05  --rank 16 --seed 1 --out /tmp/conv4/default-0.05-r16-seed1
