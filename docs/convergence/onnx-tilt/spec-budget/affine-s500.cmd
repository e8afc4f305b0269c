hypernoise train --model models/onnx/testdata/spec.json --reward score=1 --beta 1 --reward-norm std-within --batch 8 --modulator affine --steps 500 --seed 1 --out OUT/affine-s500
