hypernoise train --model models/onnx/testdata/spec.json --reward score=1 --beta 1 --reward-norm std-within --steps 1000 --batch 8 --modulator lora --seed 1 --out OUT/lora-seed1
