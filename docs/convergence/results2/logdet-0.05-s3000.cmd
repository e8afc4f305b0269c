/tmp/hn train --reward align=1 --beta 0.05 --reg logdet --steps 3000 --out /tmp/conv/logdet-0.05-s3000
