hypernoise train --reward align=1 --beta 0.05  --var-penalty 2 --seed 1 --out /tmp/vp/vp2-0.05-seed1
