hypernoise train --model models/onnx/testdata/spec.json --reward score=1 --beta 1 --reward-norm std-within --steps 1000 --batch 8 --modulator mlp --seed 1 --out OUT/mlp-seed1
