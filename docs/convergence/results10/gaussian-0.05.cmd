hypernoise train --reward align=1 --beta 0.05  --modulator gaussian --out /tmp/emb10/gaussian-0.05
