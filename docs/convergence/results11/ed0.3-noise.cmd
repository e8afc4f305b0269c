hypernoise train --reward align=1 --beta 0.05  --seed 1 --prompts-per-step 2 --out /tmp/r11/ed0.3-noise
