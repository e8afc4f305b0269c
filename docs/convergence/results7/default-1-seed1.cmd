hypernoise train --reward align=1 --beta 1  --seed 1 --out /tmp/conv7/default-1-seed1
