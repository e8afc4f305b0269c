hypernoise train --model models/onnx/testdata/t2i_emb.json --reward clip=1 --reward-norm std-within --beta 1 --steps 1000 --batch 8 --modulator mlp --tilt-match 1 --seed 1 --out /tmp/r12/mlp-tm1
