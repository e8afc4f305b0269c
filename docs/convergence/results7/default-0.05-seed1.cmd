hypernoise train --reward align=1 --beta 0.05  --seed 1 --out /tmp/conv7/default-0.05-seed1
