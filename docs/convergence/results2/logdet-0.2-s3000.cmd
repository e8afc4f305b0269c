/tmp/hn train --reward align=1 --beta 0.2 --reg logdet --steps 3000 --out /tmp/conv/logdet-0.2-s3000
