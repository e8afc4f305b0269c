hypernoise train --model models/onnx/testdata/t2i_emb.json --reward clip=1 --beta 1 --reward-norm std-within --batch 8 --modulator lora --steps 500 --seed 1 --out OUT/lora-s500
