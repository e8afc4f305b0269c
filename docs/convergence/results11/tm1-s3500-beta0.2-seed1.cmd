hypernoise train --reward align=1 --beta 0.2 --tilt-match 1 --steps 3500 --seed 1 --out /tmp/r11/tm1-s3500-beta0.2-seed1
