hypernoise train --reward align=1 --beta 0.05  --modulator affine --reg logdet --steps 2000 --out /tmp/emb10/affine-logdet-0.05-s2000
