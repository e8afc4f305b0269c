hypernoise train --reward align=1 --beta 0.05  --modulator affine --out /tmp/emb/affine-0.05
