hypernoise train --reward align=1 --beta 0.05  --seed 1 --tilt-match 1 --out /tmp/r11/tm1
