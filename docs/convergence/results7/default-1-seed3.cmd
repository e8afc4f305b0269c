hypernoise train --reward align=1 --beta 1  --seed 3 --out /tmp/conv7/default-1-seed3
