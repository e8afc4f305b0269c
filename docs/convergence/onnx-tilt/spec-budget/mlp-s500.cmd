hypernoise train --model models/onnx/testdata/spec.json --reward score=1 --beta 1 --reward-norm std-within --batch 8 --modulator mlp --steps 500 --seed 1 --out OUT/mlp-s500
