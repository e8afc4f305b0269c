hypernoise train --reward align=1 --beta 0.05  --seed 1 --tilt-match 3 --out /tmp/r11/tm3
