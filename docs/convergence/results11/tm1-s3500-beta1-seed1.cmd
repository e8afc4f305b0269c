hypernoise train --reward align=1 --beta 1 --tilt-match 1 --steps 3500 --seed 1 --out /tmp/r11/tm1-s3500-beta1-seed1
