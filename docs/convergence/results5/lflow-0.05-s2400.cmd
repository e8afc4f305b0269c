hypernoise train --reward align=1 --beta 0.05 --modulator flow --conditioner lora --couplings 2 --steps 2400 --out OUT/lflow-0.05-s2400
