hypernoise train --reward align=1 --beta 0.05  --seed 1 --out /tmp/emb05/default-0.05-seed1
