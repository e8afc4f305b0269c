#!/usr/bin/python3
"""Makes the hostile ONNX fixtures of the hostile-input suite (cmd/hypernoise/hostile_test.go and
scripts/hostile.sh) by editing the graphs of models/onnx/testdata with python3-onnx (Debian's 1.12
is enough; no PyTorch). Run from anywhere:

    /usr/bin/python3 cmd/hypernoise/testdata/hostile/make_hostile.py

Each reward keeps reward.onnx's graph and names its old output "score_raw", then computes "score":
  reward_nan.onnx      score = score_raw * NaN                  (NaN for every sample)
  reward_inf.onnx      score = score_raw + Inf                  (+Inf for every sample)
  reward_big.onnx      score = double(score_raw) * 0 + 1e39     (float64 1e39: +Inf once in float32)
  reward_half.onnx     score = NaN where sin(1000 score_raw) > 0, else score_raw  (about half NaN)
and gen_nan.onnx is gen.onnx with image = image * NaN. gen.onnx and reward.onnx are copied beside
them so that every spec here names files in its own folder. The specs (spec_*.json) are written too.
Everything is deterministic.
"""
import copy
import json
import math
import os
import shutil

import onnx
from onnx import TensorProto, helper

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "..", "..", "..", "..", "models", "onnx", "testdata")


def const(name, value, dtype=TensorProto.FLOAT):
    return helper.make_node("Constant", [], [name], value=helper.make_tensor(name + "_t", dtype, [], [value]))


def rename_output(model, old, new):
    g = model.graph
    for n in g.node:
        n.output[:] = [new if o == old else o for o in n.output]
    for o in g.output:
        if o.name == old:
            return o
    raise SystemExit("no output " + old)


def edit(src, dst, output, nodes, out_type=TensorProto.FLOAT):
    m = onnx.load(os.path.join(SRC, src))
    out = rename_output(m, output, output + "_raw")
    m.graph.node.extend(nodes)
    out.name = output
    out.type.tensor_type.elem_type = out_type
    onnx.checker.check_model(m)
    onnx.save(m, os.path.join(HERE, dst))


def main():
    nan, inf = float("nan"), float("inf")
    edit("reward.onnx", "reward_nan.onnx", "score",
         [const("c_nan", nan), helper.make_node("Mul", ["score_raw", "c_nan"], ["score"])])
    edit("reward.onnx", "reward_inf.onnx", "score",
         [const("c_inf", inf), helper.make_node("Add", ["score_raw", "c_inf"], ["score"])])
    edit("reward.onnx", "reward_big.onnx", "score",
         [helper.make_node("Cast", ["score_raw"], ["s64"], to=TensorProto.DOUBLE),
          const("c_zero", 0.0, TensorProto.DOUBLE), const("c_big", 1e39, TensorProto.DOUBLE),
          helper.make_node("Mul", ["s64", "c_zero"], ["s0"]),
          helper.make_node("Add", ["s0", "c_big"], ["score"])], TensorProto.DOUBLE)
    edit("reward.onnx", "reward_half.onnx", "score",
         [const("c_k", 1000.0), const("c_0", 0.0), const("c_nan2", nan),
          helper.make_node("Mul", ["score_raw", "c_k"], ["sk"]),
          helper.make_node("Sin", ["sk"], ["ss"]),
          helper.make_node("Greater", ["ss", "c_0"], ["bad"]),
          helper.make_node("Where", ["bad", "c_nan2", "score_raw"], ["score"])])
    edit("gen.onnx", "gen_nan.onnx", "image",
         [const("g_nan", nan), helper.make_node("Mul", ["image_raw", "g_nan"], ["image"])])
    for f in ("gen.onnx", "reward.onnx"):
        shutil.copy(os.path.join(SRC, f), os.path.join(HERE, f))
    base = json.load(open(os.path.join(SRC, "spec.json")))
    for name, gen, reward in [("reward_nan", "gen.onnx", "reward_nan.onnx"), ("reward_inf", "gen.onnx", "reward_inf.onnx"),
                              ("reward_big", "gen.onnx", "reward_big.onnx"), ("reward_half", "gen.onnx", "reward_half.onnx"),
                              ("gen_nan", "gen_nan.onnx", "reward.onnx"), ("ok", "gen.onnx", "reward.onnx")]:
        s = copy.deepcopy(base)
        s["name"] = "hostile-" + name.replace("_", "-")
        s["generator"]["onnx"] = gen
        s["rewards"]["score"]["onnx"] = reward
        with open(os.path.join(HERE, "spec_%s.json" % name), "w") as f:
            json.dump(s, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
