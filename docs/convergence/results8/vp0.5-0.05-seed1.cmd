hypernoise train --reward align=1 --beta 0.05  --var-penalty 0.5 --seed 1 --out /tmp/vp/vp0.5-0.05-seed1
