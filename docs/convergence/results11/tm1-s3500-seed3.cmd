hypernoise train --reward align=1 --beta 0.05 --tilt-match 1 --steps 3500 --seed 3 --out /tmp/r11/tm1-s3500-seed3
