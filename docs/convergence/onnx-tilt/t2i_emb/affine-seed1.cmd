hypernoise train --model models/onnx/testdata/t2i_emb.json --reward clip=1 --beta 1 --reward-norm std-within --steps 1000 --batch 8 --modulator affine --seed 1 --out OUT/affine-seed1
