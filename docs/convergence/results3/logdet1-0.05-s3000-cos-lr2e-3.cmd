/tmp/hn3 train --reward align=1 --beta 0.05  --reg logdet --terms 1 --steps 3000 --out /tmp/conv/logdet1-0.05-s3000-cos-lr2e-3
