#!/usr/bin/python3
"""Makes the ONNX test fixtures of models/onnx with PyTorch (Debian's python3-torch 1.13 is enough;
the `onnx` Python package is not needed).

    /usr/bin/python3 models/onnx/testdata/make_fixtures.py

Writes, next to this script:
  gen.onnx          a small conv one-step generator: noise [B,4,8,8] + prompt ids [B] -> image [B,3,32,32]
                    in [0,1], with a noise-shaped backbone output `latent` [B,4,8,8]. It uses GroupNorm
                    (exported as InstanceNormalization), SiLU (Sigmoid*x), ConvTranspose, bilinear and
                    nearest upsampling (Resize) and a prompt embedding table (Gather).
  reward.onnx       a small ViT-like reward: image [B,3,32,32] + prompt ids [B] -> score [B]. It uses a
                    patch-embedding conv (4x4 kernel, stride 4), multi-head attention, LayerNorm, GELU;
                    the score is a prompt-conditioned head plus 4 x (mean red - mean green/blue).
  gen_ext.onnx(+.data)   gen.onnx with every float initializer stored as external data.
  gen_odd.onnx, reward_odd.onnx   the same with odd kernels only (ConvTranspose 3x3, patches 3x3 with
                    stride 3), whose input gradients GoMLX v0.26 gets right even before compute/'s fix
                    of the even-kernel convolution gradient.
  gen_fp16.onnx     gen.onnx with every float initializer stored as FLOAT16 (and gen_bf16.onnx, BFLOAT16).
  spec.json         the model spec the tests and docs use.
  gen_uncond.onnx, reward_uncond.onnx, spec_uncond.json   the same models with the prompt fixed to id 0
                    and no prompt input: an unconditional generator and reward.
  gen_static.onnx   gen_uncond.onnx exported without dynamic_axes (batch fixed to 2): refused at load.
  reference.json    inputs, forward outputs and input gradients (of sum(w*y) for fixed weights w) from
                    PyTorch for each file, in float64 lists.
Everything is seeded, so rerunning reproduces the same files.
"""
import io
import json
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
PROMPTS = ["circle", "square", "stripes"]
OPSET = 17


class Generator(nn.Module):
    def __init__(self, n_prompts=3, ch=16, up_kernel=4):
        super().__init__()
        self.embed = nn.Embedding(n_prompts, ch)
        self.conv_in = nn.Conv2d(4, ch, 3, padding=1)
        self.gn1 = nn.GroupNorm(4, ch)
        self.conv_mid = nn.Conv2d(ch, ch, 3, padding=1)
        self.gn2 = nn.GroupNorm(4, ch)
        self.conv_out = nn.Conv2d(ch, 4, 3, padding=1)  # backbone output layer: latent [4,8,8]
        self.dec_in = nn.Conv2d(4, ch, 3, padding=1)
        self.gn3 = nn.GroupNorm(4, ch)
        # 16x16 -> 32x32: kernel 4 (even), or kernel 3 with output_padding 1 (odd)
        self.up = nn.ConvTranspose2d(ch, 8, up_kernel, stride=2, padding=1, output_padding=up_kernel % 2)
        self.dec_out = nn.Conv2d(8, 3, 3, padding=1)
        self.skip = nn.Conv2d(4, 3, 1)

    def forward(self, noise, prompt):
        h = F.silu(self.gn1(self.conv_in(noise)))
        h = h + self.embed(prompt)[:, :, None, None]
        h = F.silu(self.gn2(self.conv_mid(h)))
        latent = self.conv_out(h)
        d = F.interpolate(latent, scale_factor=2.0, mode="bilinear", align_corners=False)  # [4,16,16]
        d = F.silu(self.gn3(self.dec_in(d)))
        d = F.silu(self.up(d))  # [8,32,32]
        s = F.interpolate(self.skip(latent), scale_factor=4.0, mode="nearest")  # [3,32,32]
        image = torch.sigmoid(self.dec_out(d) + s)
        return image, latent


class Reward(nn.Module):
    def __init__(self, n_prompts=3, dim=32, heads=4, patch=4, side=32):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, patch, stride=patch)  # even kernel, stride = kernel
        n = ((side - patch) // patch + 1) ** 2
        self.pos = nn.Parameter(torch.randn(1, n, dim) * 0.1)
        self.ln1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.prompt = nn.Embedding(n_prompts, dim)
        self.head = nn.Linear(dim, dim)

    def forward(self, image, prompt):
        t = self.patch(image).flatten(2).transpose(1, 2) + self.pos  # [B, 64, dim]
        h = self.ln1(t)
        a, _ = self.attn(h, h, h, need_weights=False)
        t = t + a
        t = t + self.mlp(self.ln2(t))
        pooled = self.head(t.mean(dim=1))  # [B, dim]
        # a prompt-conditioned score of the attention features, plus a known learnable component (a
        # "redness", the analogue of the paper's colour rewards) so that training has a clear signal
        redness = image[:, 0].mean(dim=(1, 2)) - image[:, 1:].mean(dim=(1, 2, 3))
        return (pooled * self.prompt(prompt)).sum(dim=1) + 4.0 * redness  # [B]


class Unconditional(nn.Module):
    """A conditional model with its prompt fixed to id 0: the unconditional fixtures."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x, torch.zeros(x.shape[0], dtype=torch.int64))


def export(model, args, path, input_names, output_names, dynamic=True):
    axes = {n: {0: "batch"} for n in input_names + output_names} if dynamic else None
    torch.onnx.export(model, args, path, opset_version=OPSET, input_names=input_names,
                      output_names=output_names, dynamic_axes=axes, do_constant_folding=True)


def flat(t):
    return [float("%.9g" % v) for v in t.detach().double().reshape(-1).tolist()]


def reference(model, inputs, names_in, names_out, seed):
    """Forward outputs and the gradients of L = sum_k sum(w_k * y_k) w.r.t. the float inputs."""
    xs = [x.clone().requires_grad_(x.is_floating_point()) for x in inputs]
    ys = model(*xs)
    if not isinstance(ys, tuple):
        ys = (ys,)
    gen = torch.Generator().manual_seed(seed)
    ws = [torch.rand(y.shape, generator=gen) * 2 - 1 for y in ys]
    loss = sum((w * y).sum() for w, y in zip(ws, ys))
    loss.backward()
    out = {"inputs": {}, "outputs": {}, "weights": {}, "grads": {}}
    for n, x in zip(names_in, xs):
        out["inputs"][n] = {"shape": list(x.shape), "dtype": "float32" if x.is_floating_point() else "int64",
                            "data": flat(x)}
        if x.is_floating_point():
            out["grads"][n] = flat(x.grad)
    for n, y, w in zip(names_out, ys, ws):
        out["outputs"][n] = {"shape": list(y.shape), "data": flat(y)}
        out["weights"][n] = flat(w)
    return out


# --- a minimal protobuf rewriter (ONNX's ModelProto -> GraphProto -> TensorProto), to store initializers
# --- as external data or as FLOAT16/BFLOAT16 without the onnx package.

def read_varint(b, i):
    v, shift = 0, 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return v, i


def varint(v):
    out = bytearray()
    while True:
        c = v & 0x7F
        v >>= 7
        if v:
            out.append(c | 0x80)
        else:
            out.append(c)
            return bytes(out)


def fields(b):
    """Yields (field number, wire type, raw field bytes including the tag, payload)."""
    i = 0
    while i < len(b):
        start = i
        tag, i = read_varint(b, i)
        num, wt = tag >> 3, tag & 7
        if wt == 0:
            _, i = read_varint(b, i)
            payload = None
        elif wt == 1:
            i += 8
            payload = None
        elif wt == 5:
            i += 4
            payload = None
        elif wt == 2:
            n, i = read_varint(b, i)
            payload = b[i:i + n]
            i += n
        else:
            raise ValueError("unsupported wire type %d" % wt)
        yield num, wt, b[start:i], payload


def ld(num, payload):
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def rewrite_model(model_bytes, tensor_fn):
    out = bytearray()
    for num, wt, raw, payload in fields(model_bytes):
        if num == 7:  # ModelProto.graph
            g = bytearray()
            for gnum, gwt, graw, gpayload in fields(payload):
                if gnum == 5:  # GraphProto.initializer
                    g += ld(5, tensor_fn(gpayload))
                else:
                    g += graw
            out += ld(7, bytes(g))
        else:
            out += raw
    return bytes(out)


def tensor_parts(t):
    dtype, raw, rest = 1, None, bytearray()
    for num, wt, fraw, payload in fields(t):
        if num == 2:
            dtype, _ = read_varint(fraw, 1)
        elif num == 9:
            raw = payload
        else:
            rest += fraw
    return dtype, raw, bytes(rest)


def to_external(data_file, blob):
    def fn(t):
        dtype, raw, rest = tensor_parts(t)
        if dtype != 1 or raw is None:
            return t
        offset = len(blob)
        blob.extend(raw)
        while len(blob) % 64:
            blob.append(0)
        entries = b"".join(ld(13, ld(1, k.encode()) + ld(2, v.encode())) for k, v in
                           [("location", data_file), ("offset", str(offset)), ("length", str(len(raw)))])
        return rest + varint(2 << 3) + varint(1) + entries + varint(14 << 3) + varint(1)
    return fn


def to_half(kind):
    code = {"fp16": 10, "bf16": 16}[kind]

    def fn(t):
        dtype, raw, rest = tensor_parts(t)
        if dtype != 1 or raw is None:
            return t
        x = torch.frombuffer(bytearray(raw), dtype=torch.float32)
        h = x.to(torch.float16 if kind == "fp16" else torch.bfloat16)
        hb = h.view(torch.int16).numpy().tobytes()
        return rest + varint(2 << 3) + varint(code) + ld(9, hb)
    return fn


def rounded(model, kind):
    m = type(model)(**model.config)
    m.load_state_dict(model.state_dict())
    with torch.no_grad():
        for p in list(m.parameters()) + list(m.buffers()):
            if p.is_floating_point():
                p.copy_(p.to(torch.float16 if kind == "fp16" else torch.bfloat16).float())
    return m.eval()


def make(cls, **config):
    m = cls(**config).eval()
    m.config = config
    if cls is Generator:
        with torch.no_grad():  # let the latent steer the colours visibly (a trained model's latent does)
            m.skip.weight.mul_(5.0)
    if cls is Reward:
        with torch.no_grad():  # make the reward less flat than at initialization
            m.prompt.weight.mul_(3.0)
    return m


def main():
    torch.manual_seed(0)
    gen, rew = make(Generator), make(Reward)
    gen_odd, rew_odd = make(Generator, up_kernel=3), make(Reward, patch=3)
    b = 2
    noise = torch.randn(b, 4, 8, 8)
    prompt = torch.tensor([0, 2], dtype=torch.int64)
    image = torch.rand(b, 3, 32, 32)

    export(gen, (noise, prompt), os.path.join(HERE, "gen.onnx"), ["noise", "prompt"], ["image", "latent"])
    export(rew, (image, prompt), os.path.join(HERE, "reward.onnx"), ["image", "prompt"], ["score"])
    export(gen_odd, (noise, prompt), os.path.join(HERE, "gen_odd.onnx"), ["noise", "prompt"], ["image", "latent"])
    export(rew_odd, (image, prompt), os.path.join(HERE, "reward_odd.onnx"), ["image", "prompt"], ["score"])

    export(Unconditional(gen).eval(), (noise,), os.path.join(HERE, "gen_static.onnx"), ["noise"], ["image", "latent"],
           dynamic=False)
    export(Unconditional(gen).eval(), (noise,), os.path.join(HERE, "gen_uncond.onnx"), ["noise"], ["image", "latent"])
    export(Unconditional(rew).eval(), (image,), os.path.join(HERE, "reward_uncond.onnx"), ["image"], ["score"])
    with open(os.path.join(HERE, "spec_uncond.json"), "w") as f:
        json.dump({"name": "fixture-uncond",
                   "generator": {"onnx": "gen_uncond.onnx", "noise_input": "noise", "noise_shape": [4, 8, 8],
                                 "output": "image", "backbone_output": "latent"},
                   "rewards": {"score": {"onnx": "reward_uncond.onnx", "image_input": "image", "output": "score"}}},
                  f, indent=2)
        f.write("\n")

    gen_bytes = open(os.path.join(HERE, "gen.onnx"), "rb").read()
    blob = bytearray()
    ext = rewrite_model(gen_bytes, to_external("gen_ext.onnx.data", blob))
    open(os.path.join(HERE, "gen_ext.onnx"), "wb").write(ext)
    open(os.path.join(HERE, "gen_ext.onnx.data"), "wb").write(bytes(blob))
    for kind in ("fp16", "bf16"):
        open(os.path.join(HERE, "gen_%s.onnx" % kind), "wb").write(rewrite_model(gen_bytes, to_half(kind)))

    ref = {
        "gen.onnx": reference(gen, [noise, prompt], ["noise", "prompt"], ["image", "latent"], 1),
        "reward.onnx": reference(rew, [image, prompt], ["image", "prompt"], ["score"], 2),
        "gen_odd.onnx": reference(gen_odd, [noise, prompt], ["noise", "prompt"], ["image", "latent"], 1),
        "reward_odd.onnx": reference(rew_odd, [image, prompt], ["image", "prompt"], ["score"], 2),
        "gen_ext.onnx": reference(gen, [noise, prompt], ["noise", "prompt"], ["image", "latent"], 1),
        "gen_fp16.onnx": reference(rounded(gen, "fp16"), [noise, prompt], ["noise", "prompt"], ["image", "latent"], 1),
        "gen_bf16.onnx": reference(rounded(gen, "bf16"), [noise, prompt], ["noise", "prompt"], ["image", "latent"], 1),
    }
    with open(os.path.join(HERE, "reference.json"), "w") as f:
        json.dump(ref, f)

    spec = {
        "name": "fixture",
        "generator": {"onnx": "gen.onnx", "noise_input": "noise", "noise_shape": [4, 8, 8],
                      "prompt_input": "prompt", "output": "image", "backbone_output": "latent"},
        "prompts": PROMPTS,
        "rewards": {"score": {"onnx": "reward.onnx", "image_input": "image", "prompt_input": "prompt",
                              "output": "score"}},
    }
    with open(os.path.join(HERE, "spec.json"), "w") as f:
        json.dump(spec, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
