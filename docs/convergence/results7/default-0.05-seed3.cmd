hypernoise train --reward align=1 --beta 0.05  --seed 3 --out /tmp/conv7/default-0.05-seed3
