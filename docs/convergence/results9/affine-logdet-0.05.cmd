hypernoise train --reward align=1 --beta 0.05  --modulator affine --reg logdet --out /tmp/emb/affine-logdet-0.05
