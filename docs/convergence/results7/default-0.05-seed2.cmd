hypernoise train --reward align=1 --beta 0.05  --seed 2 --out /tmp/conv7/default-0.05-seed2
