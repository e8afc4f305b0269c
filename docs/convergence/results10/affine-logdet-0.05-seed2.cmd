hypernoise train --reward align=1 --beta 0.05  --modulator affine --reg logdet --seed 2 --out /tmp/emb10/affine-logdet-0.05-seed2
