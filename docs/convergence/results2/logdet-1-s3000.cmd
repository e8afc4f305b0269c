/tmp/hn train --reward align=1 --beta 1 --reg logdet --steps 3000 --out /tmp/conv/logdet-1-s3000
