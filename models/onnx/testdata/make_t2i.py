#!/usr/bin/python3
"""Makes the text-to-image (T2I) fixture family of models/onnx with PyTorch (Debian's python3-torch 1.13;
the `onnx` Python package is only needed for the sd-turbo size, to gather its external data into one file).

    /usr/bin/python3 models/onnx/testdata/make_t2i.py [--size tiny|small|sd-turbo] [--out DIR]
    /usr/bin/python3 models/onnx/testdata/make_t2i.py --size small --bench [--batch 2] [--rank 4] [--threads 2]

Every model is written by us with random (seeded) weights, shaped like the models the paper's users
bring:

  generator   an SD-Turbo-like one-step text-to-image model. A latent UNet predicts the noise eps_hat
              from the noise x_T [B,4,h,w] at the fixed timestep 999 (sin/cos timestep embedding and
              its MLP; GroupNorm/SiLU ResNet blocks; transformer blocks with LayerNorm, self-attention,
              cross-attention on 77 text tokens and a GELU feed-forward; strided-conv downsampling;
              nearest upsampling; skip concatenations); the scheduler's step to the clean latent
              x0 = (x_T - sqrt(1-abar) eps_hat) / sqrt(abar) (a residual sum of the noise and the
              UNet's output); a VAE-decoder-like upsampler (ResNet blocks, nearest upsampling by 2 per
              level) to RGB in [0,1] (x/2 + 1/2 clamped, as diffusers' image processor does).
              Outputs: image, latent (x0, the residual-sum backbone) and eps (the UNet's output, the
              plain backbone).
  reward clip a CLIP-like ViT score: bilinear resize to the tower's resolution, CLIP's normalization,
              patch conv, class token, pre-LayerNorm transformer (nn.MultiheadAttention, QuickGELU),
              projection; score = 100 * cos(image embedding, text embedding).
  reward aesthetic  an aesthetic-like head: bicubic resize (CLIP's own preprocessing), a conv stem with
              MaxPool and AveragePool, transformer blocks whose attention is written with torch.einsum,
              mean pooling and an MLP head to one score.

Variants written for every size:
  t2i_gen.onnx        prompt ids [B] -> table of per-prompt 77-token text embeddings baked in (Gather);
                      attention as diffusers' classic AttnProcessor exports it:
                      baddbmm(empty, q, k^T, beta=0, alpha=scale)
  t2i_gen_bmm.onnx    the same weights, attention as bmm(q, k^T) * scale
  t2i_gen_emb.onnx    the same weights, the text embeddings [B,77,D] as an input `text` (bmm attention)
  t2i_clip.onnx       image + prompt ids -> score (the text embeddings baked as a table)
  t2i_clip_emb.onnx   image + text embedding [B,P] as an input `text_embeds`
  t2i_aesthetic.onnx  image -> score
  t2i_text.safetensors        the generator's text embeddings, one tensor [77,D] per prompt (named by it)
  t2i_clip_text.safetensors   the clip reward's text embeddings, one table `embeddings` [n_prompts,P]
                              and the prompt list in the metadata ("prompts", a JSON list)
  t2i.json, t2i_bmm.json, t2i_emb.json   the specs (baked, bmm, embeddings as data)
  t2i_noaes.json, t2i_bmm_noaes.json     (small and sd-turbo) the first two without the aesthetic reward,
                                         as `bench --model` times them

Sizes (--size):
  tiny      latent 4x8x8, image 32x32; committed next to this script and used by the tests, with
            t2i_reference.json: inputs, outputs and input gradients (of sum(w*y), fixed w) from PyTorch.
  small     latent 4x16x16, image 128x128 (~25M parameters); written to testdata/t2i-small/ (git-ignored).
  sd-turbo  SD-Turbo's widths: UNet channels 320/640/1280/1280, text width 1024, latent 4x64x64,
            image 512x512, a CLIP ViT-L/14-like reward and a ViT-B/16-wide aesthetic; float32 weights
            as external data (<name>.onnx.data); written to testdata/t2i-sd-turbo/ (git-ignored).
Generating small and sd-turbo is heavy: run it under `flock /tmp/hn-heavy.lock`.

--bench prints one JSON line: PyTorch's generator forward (ms per image at --batch), the reward
forwards, and the twin of hypernoise's HyperNoise training step on the same weights (a LoRA copy of
the UNet whose output conv is replaced by its LoRA branch, so f = 0 at step 0; eps' = eps + f(eps);
the frozen generator and the clip reward; loss = -reward + 0.5 mean(f^2); backward; gradient-norm
clip 1; AdamW step),
in ms per step (--rank 0: the forwards only; a step that fails, e.g. out of memory under `ulimit -v`,
is reported as "hypernoise_step_error" beside the forwards' figures). Everything is seeded, so rerunning reproduces the same files.
"""
import argparse
import json
import math
import os
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
OPSET = 17
TOKENS = 77
PROMPTS = ["a red apple", "a blue car", "a green forest", "a yellow sun", "a photo of a cat",
           "a watercolor of a lighthouse", "a bowl of soup", "a snowy mountain"]
# SD's scaled-linear schedule at the one-step timestep 999: alpha_bar(999)
ABAR = 1.0
for _b in torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000) ** 2:
    ABAR *= 1.0 - float(_b)
LATENT_SCALE = 0.18215
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

SIZES = {
    "tiny": dict(
        gen=dict(latent=8, chans=(16, 32), attn=(False, False), layers=1, text_dim=32, head_dim=8,
                 temb=32, dec_chans=(16, 8, 8), groups=4, n_prompts=3),
        clip=dict(side=32, res=28, patch=4, width=32, layers=2, heads=2, proj=32, n_prompts=3),
        aes=dict(side=32, res=24, stem=8, width=32, layers=1, heads=2, patch=2, hidden=(16,)),
        batch=2),
    "small": dict(
        gen=dict(latent=16, chans=(64, 128, 192), attn=(False, True, True), layers=1, text_dim=512,
                 head_dim=32, temb=256, dec_chans=(128, 96, 64, 32), groups=16, n_prompts=8),
        clip=dict(side=128, res=112, patch=16, width=384, layers=6, heads=6, proj=256, n_prompts=8),
        aes=dict(side=128, res=112, stem=32, width=256, layers=4, heads=4, patch=4, hidden=(128, 64, 16)),
        batch=2),
    "sd-turbo": dict(
        gen=dict(latent=64, chans=(320, 640, 1280, 1280), attn=(True, True, True, False), layers=2,
                 text_dim=1024, head_dim=64, temb=1280, dec_chans=(512, 512, 256, 128), groups=32,
                 n_prompts=8),
        clip=dict(side=512, res=224, patch=14, width=1024, layers=24, heads=16, proj=768, n_prompts=8),
        aes=dict(side=512, res=224, stem=64, width=768, layers=12, heads=12, patch=4, hidden=(1024, 128, 64, 16)),
        batch=1),
}


# ---------------------------------------------------------------------------------------------------
# attention, in the export forms real models use

def split_heads(x, heads):
    """[B, N, C] -> [B*heads, N, C/heads] (diffusers' head_to_batch_dim)."""
    b, n, c = x.shape
    return x.reshape(b, n, heads, c // heads).permute(0, 2, 1, 3).reshape(b * heads, n, c // heads)


def merge_heads(x, heads):
    bh, n, d = x.shape
    return x.reshape(bh // heads, heads, n, d).permute(0, 2, 1, 3).reshape(bh // heads, n, heads * d)


class Attention(nn.Module):
    """diffusers-style attention: to_q/to_k/to_v without bias, to_out with bias; `form` is how the
    scores are written: "baddbmm" (the classic AttnProcessor) or "bmm"."""

    def __init__(self, dim, ctx_dim, head_dim):
        super().__init__()
        self.heads = max(1, dim // head_dim)
        self.scale = (dim // self.heads) ** -0.5
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(ctx_dim, dim, bias=False)
        self.to_v = nn.Linear(ctx_dim, dim, bias=False)
        self.to_out = nn.Linear(dim, dim)
        self.form = "baddbmm"

    def forward(self, x, ctx=None):
        ctx = x if ctx is None else ctx
        q = split_heads(self.to_q(x), self.heads)
        k = split_heads(self.to_k(ctx), self.heads)
        v = split_heads(self.to_v(ctx), self.heads)
        if self.form == "baddbmm":
            empty = torch.empty(q.shape[0], q.shape[1], k.shape[1], dtype=q.dtype, device=q.device)
            scores = torch.baddbmm(empty, q, k.transpose(-1, -2), beta=0, alpha=self.scale)
        else:
            scores = torch.bmm(q, k.transpose(-1, -2)) * self.scale
        return self.to_out(merge_heads(torch.bmm(scores.softmax(dim=-1), v), self.heads))


class Transformer(nn.Module):
    """A spatial transformer: GroupNorm, proj_in, [LayerNorm self-attn, LayerNorm cross-attn,
    LayerNorm GELU feed-forward], proj_out, plus the input."""

    def __init__(self, ch, text_dim, head_dim, groups):
        super().__init__()
        self.norm = nn.GroupNorm(groups, ch, eps=1e-6)
        self.proj_in = nn.Linear(ch, ch)
        self.ln1, self.attn1 = nn.LayerNorm(ch), Attention(ch, ch, head_dim)
        self.ln2, self.attn2 = nn.LayerNorm(ch), Attention(ch, text_dim, head_dim)
        self.ln3 = nn.LayerNorm(ch)
        self.ff = nn.Sequential(nn.Linear(ch, 4 * ch), nn.GELU(), nn.Linear(4 * ch, ch))
        self.proj_out = nn.Linear(ch, ch)

    def forward(self, x, text):
        b, c, h, w = x.shape
        t = self.norm(x).permute(0, 2, 3, 1).reshape(b, h * w, c)
        t = self.proj_in(t)
        t = t + self.attn1(self.ln1(t))
        t = t + self.attn2(self.ln2(t), text)
        t = t + self.ff(self.ln3(t))
        t = self.proj_out(t).reshape(b, h, w, c).permute(0, 3, 1, 2)
        return x + t


class ResBlock(nn.Module):
    def __init__(self, cin, cout, groups, temb=None):
        super().__init__()
        self.n1 = nn.GroupNorm(groups, cin, eps=1e-6)
        self.c1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.t = nn.Linear(temb, cout) if temb else None
        self.n2 = nn.GroupNorm(groups, cout, eps=1e-6)
        self.c2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb=None):
        h = self.c1(F.silu(self.n1(x)))
        if self.t is not None:
            h = h + self.t(F.silu(temb))[:, :, None, None]
        h = self.c2(F.silu(self.n2(h)))
        return (x if self.skip is None else self.skip(x)) + h


def timestep_embedding(t, dim):
    """sin/cos embedding of timesteps t [B] (diffusers' flip_sin_to_cos=True, shift 0)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    args = t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class UNet(nn.Module):
    """eps_hat(x_T, text): levels of `layers` ResBlocks (+ a transformer where attn[i]), strided-conv
    downsampling, a mid block (ResBlock, transformer, ResBlock), and up levels of layers+1
    ResBlocks (+ transformers) on skip concatenations with nearest upsampling, as SD's
    UNet2DConditionModel."""

    def __init__(self, chans, attn, layers, text_dim, head_dim, temb, groups, **_):
        super().__init__()
        self.temb_dim = chans[0]
        self.time = nn.Sequential(nn.Linear(chans[0], temb), nn.SiLU(), nn.Linear(temb, temb))
        self.conv_in = nn.Conv2d(4, chans[0], 3, padding=1)
        self.down = nn.ModuleList()
        skips = [chans[0]]
        c = chans[0]
        for i, co in enumerate(chans):
            level = nn.ModuleList()
            for _ in range(layers):
                level.append(ResBlock(c, co, groups, temb))
                c = co
                level.append(Transformer(c, text_dim, head_dim, groups) if attn[i] else nn.Identity())
                skips.append(c)
            self.down.append(level)
            if i < len(chans) - 1:
                self.down.append(nn.ModuleList([nn.Conv2d(c, c, 3, stride=2, padding=1)]))
                skips.append(c)
        self.mid = nn.ModuleList([ResBlock(c, c, groups, temb), Transformer(c, text_dim, head_dim, groups),
                                  ResBlock(c, c, groups, temb)])
        self.up = nn.ModuleList()
        for i, co in reversed(list(enumerate(chans))):
            level = nn.ModuleList()
            for _ in range(layers + 1):
                level.append(ResBlock(c + skips.pop(), co, groups, temb))
                c = co
                level.append(Transformer(c, text_dim, head_dim, groups) if attn[i] else nn.Identity())
            self.up.append(level)
            if i > 0:
                self.up.append(nn.ModuleList([nn.Conv2d(c, c, 3, padding=1)]))
        self.norm_out = nn.GroupNorm(groups, c, eps=1e-6)
        self.conv_out = nn.Conv2d(c, 4, 3, padding=1)

    def forward(self, x, text):
        t = torch.ones_like(x[:, 0, 0, 0]) * 999.0
        temb = self.time(timestep_embedding(t, self.temb_dim))
        h = self.conv_in(x)
        skips = [h]
        for level in self.down:
            if len(level) == 1:  # downsampler
                h = level[0](h)
                skips.append(h)
                continue
            for j in range(0, len(level), 2):
                h = level[j](h, temb)
                if not isinstance(level[j + 1], nn.Identity):
                    h = level[j + 1](h, text)
                skips.append(h)
        h = self.mid[2](self.mid[1](self.mid[0](h, temb), text), temb)
        for level in self.up:
            if len(level) == 1:  # upsampler
                h = level[0](F.interpolate(h, scale_factor=2.0, mode="nearest"))
                continue
            for j in range(0, len(level), 2):
                h = level[j](torch.cat([h, skips.pop()], dim=1), temb)
                if not isinstance(level[j + 1], nn.Identity):
                    h = level[j + 1](h, text)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """A VAE-decoder-like upsampler: latent [4,h,w] -> RGB [3, h*2^(L-1), w*2^(L-1)] in [-1, 1]-ish."""

    def __init__(self, dec_chans, groups, **_):
        super().__init__()
        c = dec_chans[0]
        self.conv_in = nn.Conv2d(4, c, 3, padding=1)
        self.mid = ResBlock(c, c, groups)
        self.blocks = nn.ModuleList()
        for i, co in enumerate(dec_chans):
            self.blocks.append(ResBlock(c, co, groups))
            c = co
            if i < len(dec_chans) - 1:
                self.blocks.append(nn.Conv2d(c, c, 3, padding=1))  # after a nearest x2 upsampling
        self.norm_out = nn.GroupNorm(groups, c, eps=1e-6)
        self.conv_out = nn.Conv2d(c, 3, 3, padding=1)

    def forward(self, z):
        h = self.mid(self.conv_in(z))
        for blk in self.blocks:
            if isinstance(blk, nn.Conv2d):
                h = blk(F.interpolate(h, scale_factor=2.0, mode="nearest"))
            else:
                h = blk(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Generator(nn.Module):
    """noise [B,4,h,w] + prompt ids [B] (or text embeddings [B,77,D] when text_input) ->
    image [B,3,H,W] in [0,1], latent x0 [B,4,h,w], eps_hat [B,4,h,w]."""

    def __init__(self, cfg, text_input=False):
        super().__init__()
        self.unet = UNet(**cfg)
        self.decoder = Decoder(**cfg)
        self.text_input = text_input
        self.register_buffer("text_table", torch.randn(cfg["n_prompts"], TOKENS, cfg["text_dim"]))

    def set_form(self, form):
        for m in self.modules():
            if isinstance(m, Attention):
                m.form = form

    def forward(self, noise, prompt_or_text):
        text = prompt_or_text if self.text_input else self.text_table[prompt_or_text]
        eps = self.unet(noise, text)
        latent = (noise - math.sqrt(1 - ABAR) * eps) / math.sqrt(ABAR)
        x = self.decoder(latent / LATENT_SCALE)
        image = (x / 2 + 0.5).clamp(0, 1)
        return image, latent, eps


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class ClipBlock(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), QuickGELU(), nn.Linear(4 * width, width))

    def forward(self, x):
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class ClipReward(nn.Module):
    """100 * cos(ViT(normalize(resize(image))), text embedding): the text embedding is a baked table
    row (prompt ids) or an input [B, proj] (text_input)."""

    def __init__(self, side, res, patch, width, layers, heads, proj, n_prompts, text_input=False):
        super().__init__()
        self.res, self.text_input = res, text_input
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).reshape(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(CLIP_STD).reshape(1, 3, 1, 1))
        self.conv1 = nn.Conv2d(3, width, patch, stride=patch, bias=False)
        n = (res // patch) ** 2
        self.class_embedding = nn.Parameter(torch.randn(width) * width ** -0.5)
        self.positional_embedding = nn.Parameter(torch.randn(n + 1, width) * width ** -0.5)
        self.ln_pre = nn.LayerNorm(width)
        self.blocks = nn.Sequential(*[ClipBlock(width, heads) for _ in range(layers)])
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.randn(width, proj) * width ** -0.5)
        self.register_buffer("text_table", torch.randn(n_prompts, proj))

    def embed(self, image):
        x = F.interpolate(image, size=(self.res, self.res), mode="bilinear", align_corners=False)
        x = (x - self.mean) / self.std
        x = self.conv1(x).flatten(2).transpose(1, 2)  # [B, n, width]
        cls = self.class_embedding.expand(x.shape[0], 1, -1)
        x = self.ln_pre(torch.cat([cls, x], dim=1) + self.positional_embedding)
        x = self.ln_post(self.blocks(x)[:, 0])
        return x @ self.proj

    def forward(self, image, prompt_or_text):
        img = self.embed(image)
        txt = prompt_or_text if self.text_input else self.text_table[prompt_or_text]
        img = img / img.norm(dim=-1, keepdim=True)
        txt = txt / txt.norm(dim=-1, keepdim=True)
        return 100.0 * (img * txt).sum(dim=-1)


class EinsumBlock(nn.Module):
    """A pre-LayerNorm transformer block whose attention is written with torch.einsum."""

    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x):
        b, n, c = x.shape
        d = c // self.heads
        q, k, v = self.qkv(self.ln_1(x)).reshape(b, n, 3, self.heads, d).unbind(2)
        s = torch.einsum("bnhd,bmhd->bhnm", q, k) * d ** -0.5
        a = torch.einsum("bhnm,bmhd->bnhd", s.softmax(dim=-1), v).reshape(b, n, c)
        x = x + self.out(a)
        return x + self.mlp(self.ln_2(x))


class AestheticReward(nn.Module):
    """bicubic resize, CLIP normalization, conv stem (conv, MaxPool 3/2, conv, AveragePool 2/2),
    patches, einsum transformer, mean pooling, an MLP head (LAION's aesthetic head) -> score [B]."""

    def __init__(self, side, res, stem, width, layers, heads, patch, hidden):
        super().__init__()
        self.res = res
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).reshape(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(CLIP_STD).reshape(1, 3, 1, 1))
        self.stem1 = nn.Conv2d(3, stem, 3, padding=1)
        self.stem2 = nn.Conv2d(stem, stem, 3, padding=1)
        self.patch = nn.Conv2d(stem, width, patch, stride=patch)
        n = (res // 4 // patch) ** 2
        self.pos = nn.Parameter(torch.randn(n, width) * width ** -0.5)
        self.blocks = nn.Sequential(*[EinsumBlock(width, heads) for _ in range(layers)])
        self.ln = nn.LayerNorm(width)
        head, c = [], width
        for h in hidden:
            head += [nn.Linear(c, h), nn.GELU()]
            c = h
        head.append(nn.Linear(c, 1))
        self.head = nn.Sequential(*head)

    def forward(self, image):
        x = F.interpolate(image, size=(self.res, self.res), mode="bicubic", align_corners=False)
        x = (x - self.mean) / self.std
        x = F.max_pool2d(F.relu(self.stem1(x)), 3, stride=2, padding=1)
        x = F.avg_pool2d(F.relu(self.stem2(x)), 2, stride=2)
        x = self.patch(x).flatten(2).transpose(1, 2) + self.pos
        x = self.ln(self.blocks(x)).mean(dim=1)
        return self.head(x)[:, 0]


# ---------------------------------------------------------------------------------------------------
# export

def export(model, args, path, input_names, output_names, external=False):
    axes = {n: {0: "batch"} for n in input_names + output_names}
    if not external:
        torch.onnx.export(model, args, path, opset_version=OPSET, input_names=input_names,
                          output_names=output_names, dynamic_axes=axes, do_constant_folding=True)
        return
    # > 2 GB: torch writes one external file per tensor; gather them into <name>.data with onnx.
    import onnx
    import shutil
    import tempfile
    tmp = tempfile.mkdtemp(dir=os.path.dirname(path))
    try:
        tpath = os.path.join(tmp, "m.onnx")
        torch.onnx.export(model, args, tpath, opset_version=OPSET, input_names=input_names,
                          output_names=output_names, dynamic_axes=axes, do_constant_folding=True)
        m = onnx.load(tpath, load_external_data=True)
        loc = os.path.basename(path) + ".data"
        for p in (path, path + ".data"):
            if os.path.exists(p):
                os.remove(p)
        onnx.save_model(m, path, save_as_external_data=True, all_tensors_to_one_file=True, location=loc,
                        size_threshold=1024)
    finally:
        shutil.rmtree(tmp)


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


def write_safetensors(path, tensors, metadata=None):
    """A safetensors file (8-byte little-endian header length, JSON header, raw little-endian data)."""
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, t in tensors.items():
        b = t.detach().float().contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def spec(name, gen_file, gen_in, cfg, prompts, clip_file, clip_in, gen_emb=None, clip_emb=None):
    s = {"name": name,
         "generator": {"onnx": gen_file, "noise_input": "noise", "noise_shape": [4, cfg["latent"], cfg["latent"]],
                       gen_in[0]: gen_in[1], "output": "image", "backbone_output": "latent"},
         "prompts": prompts,
         "rewards": {"clip": {"onnx": clip_file, "image_input": "image", clip_in[0]: clip_in[1], "output": "score"},
                     "aesthetic": {"onnx": "t2i_aesthetic.onnx", "image_input": "image", "output": "score"}}}
    if gen_emb:
        s["generator"]["prompt_embeddings"] = gen_emb
    if clip_emb:
        s["rewards"]["clip"]["prompt_embeddings"] = clip_emb
    return s


def build(size):
    torch.manual_seed(0)
    c = SIZES[size]
    gen = Generator(c["gen"]).eval()
    clip = ClipReward(**c["clip"]).eval()
    aes = AestheticReward(**c["aes"]).eval()
    return c, gen, clip, aes


def text_input(m, on):
    """m with its text embeddings taken as an input (on) or from its baked table (the same weights:
    one module, so the sd-turbo size is held once)."""
    m.text_input = on
    return m


def count(m, skip=("text_table",)):
    return sum(p.numel() for n, p in m.state_dict().items() if not any(s in n for s in skip))


def make(size, out, only=None, external=None):
    os.makedirs(out, exist_ok=True)
    c, gen, clip, aes = build(size)
    prompts = PROMPTS[:c["gen"]["n_prompts"]]
    lat, side, b = c["gen"]["latent"], c["clip"]["side"], 2
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(b, 4, lat, lat, generator=g)
    prompt = torch.tensor([0, c["gen"]["n_prompts"] - 1], dtype=torch.int64)
    text = gen.text_table[prompt]
    image = torch.rand(b, 3, side, side, generator=g)
    text_embeds = clip.text_table[prompt]
    ext = size == "sd-turbo" if external is None else external
    p = lambda f: os.path.join(out, f)
    gouts = ["image", "latent", "eps"]
    # (not under no_grad: nn.MultiheadAttention's inference fast path does not export)
    def want(f):
        return not only or f in only
    if want("t2i_gen.onnx"):
        gen.set_form("baddbmm")
        export(gen, (noise, prompt), p("t2i_gen.onnx"), ["noise", "prompt"], gouts, ext)
    if want("t2i_gen_bmm.onnx"):
        gen.set_form("bmm")
        export(gen, (noise, prompt), p("t2i_gen_bmm.onnx"), ["noise", "prompt"], gouts, ext)
    if want("t2i_gen_emb.onnx"):
        gen.set_form("bmm")
        export(text_input(gen, True), (noise, text), p("t2i_gen_emb.onnx"), ["noise", "text"], gouts, ext)
        text_input(gen, False)
    if want("t2i_clip.onnx"):
        export(clip, (image, prompt), p("t2i_clip.onnx"), ["image", "prompt"], ["score"], ext)
    if want("t2i_clip_emb.onnx"):
        export(text_input(clip, True), (image, text_embeds), p("t2i_clip_emb.onnx"), ["image", "text_embeds"], ["score"], ext)
        text_input(clip, False)
    if want("t2i_aesthetic.onnx"):
        export(aes, (image,), p("t2i_aesthetic.onnx"), ["image"], ["score"], ext)
    write_safetensors(p("t2i_text.safetensors"), {pr: gen.text_table[i] for i, pr in enumerate(prompts)})
    write_safetensors(p("t2i_clip_text.safetensors"), {"embeddings": clip.text_table},
                      {"prompts": json.dumps(prompts)})
    name = "t2i-" + size
    specs = {
        "t2i.json": spec(name, "t2i_gen.onnx", ("prompt_input", "prompt"), c["gen"], prompts, "t2i_clip.onnx",
                         ("prompt_input", "prompt")),
        "t2i_bmm.json": spec(name + "-bmm", "t2i_gen_bmm.onnx", ("prompt_input", "prompt"), c["gen"], prompts,
                             "t2i_clip.onnx", ("prompt_input", "prompt")),
        "t2i_emb.json": spec(name + "-emb", "t2i_gen_emb.onnx", ("prompt_input", "text"), c["gen"], prompts,
                             "t2i_clip_emb.onnx", ("prompt_input", "text_embeds"),
                             gen_emb={"file": "t2i_text.safetensors"},
                             clip_emb={"file": "t2i_clip_text.safetensors"}),
    }
    if size != "tiny":
        # The benchmarks' specs: the same models without the aesthetic reward, which `--only`
        # exports of the generator and clip reward (sd-turbo's usual run) do not write.
        for f in ("t2i.json", "t2i_bmm.json"):
            s = json.loads(json.dumps(specs[f]))
            del s["rewards"]["aesthetic"]
            specs[f.replace(".json", "_noaes.json")] = s
    for f, s in specs.items():
        with open(p(f), "w") as fh:
            json.dump(s, fh, indent=2)
            fh.write("\n")
    if size == "tiny" and not only:
        gen.set_form("baddbmm")
        ref = {
            "t2i_gen.onnx": reference(gen, [noise, prompt], ["noise", "prompt"], gouts, 1),
            "t2i_gen_emb.onnx": reference(text_input(gen, True), [noise, text], ["noise", "text"], gouts, 1),
            "t2i_clip.onnx": reference(clip, [image, prompt], ["image", "prompt"], ["score"], 2),
            "t2i_clip_emb.onnx": reference(text_input(clip, True), [image, text_embeds], ["image", "text_embeds"], ["score"], 2),
            "t2i_aesthetic.onnx": reference(aes, [image], ["image"], ["score"], 3),
        }
        ref["t2i_gen_bmm.onnx"] = ref["t2i_gen.onnx"]
        with open(p("t2i_reference.json"), "w") as fh:
            json.dump(ref, fh)
    info = {"size": size, "out": out, "params": {"unet": count(gen.unet), "decoder": count(gen.decoder),
                                                 "clip": count(clip), "aesthetic": count(aes)},
            "files": {f: os.path.getsize(p(f)) + (os.path.getsize(p(f) + ".data") if os.path.exists(p(f) + ".data") else 0)
                      for f in sorted(os.listdir(out)) if f.startswith("t2i") and f.endswith((".onnx", ".safetensors", ".json"))}}
    print(json.dumps(info))


# ---------------------------------------------------------------------------------------------------
# the twin of hypernoise's training step, for `bench`

class LoRA(nn.Module):
    """W x + (alpha/r) B A x on a Conv2d or Linear (A ~ N(0, 1/r), B = 0); branch_only: (alpha/r) B A x."""

    def __init__(self, base, rank, branch_only=False):
        super().__init__()
        self.base, self.branch_only, self.scale = base, branch_only, 2.0  # alpha = 2 rank
        if isinstance(base, nn.Conv2d):
            self.a = nn.Conv2d(base.in_channels, rank, base.kernel_size, base.stride, base.padding, bias=False)
            self.b = nn.Conv2d(rank, base.out_channels, 1, bias=False)
        else:
            self.a = nn.Linear(base.in_features, rank, bias=False)
            self.b = nn.Linear(rank, base.out_features, bias=False)
        nn.init.normal_(self.a.weight, std=rank ** -0.5)
        nn.init.zeros_(self.b.weight)

    def forward(self, x):
        d = self.scale * self.b(self.a(x))
        return d if self.branch_only else self.base(x) + d


def lora_copy(unet, rank):
    import copy
    u = copy.deepcopy(unet)
    for p in u.parameters():
        p.requires_grad_(False)

    def wrap(mod):
        for name, ch in mod.named_children():
            if isinstance(ch, (nn.Conv2d, nn.Linear)):
                setattr(mod, name, LoRA(ch, rank, branch_only=ch is u.conv_out))
            else:
                wrap(ch)
    out = u.conv_out
    wrap(u)
    assert isinstance(u.conv_out, LoRA) and u.conv_out.base is out
    return u


def bench(size, batch, rank, steps, threads, attention):
    torch.set_num_threads(threads)
    c, gen, clip, aes = build(size)
    gen.set_form(attention)
    lat = c["gen"]["latent"]
    g = torch.Generator().manual_seed(2)
    noise = torch.randn(batch, 4, lat, lat, generator=g)
    prompt = torch.arange(batch) % c["gen"]["n_prompts"]
    for p in list(gen.parameters()) + list(clip.parameters()) + list(aes.parameters()):
        p.requires_grad_(False)

    def timed(fn, n):
        fn()  # warm-up
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t0) / n

    with torch.no_grad():
        fwd = timed(lambda: gen(noise, prompt), steps)
        img = gen(noise, prompt)[0]
        clip_fwd = timed(lambda: clip(img, prompt), steps)
        aes_fwd = timed(lambda: aes(img), steps)
    out = {"size": size, "batch": batch, "threads": threads, "torch": torch.__version__,
           "attention": attention, "generator_forward_ms_per_image": 1e3 * fwd / batch,
           "clip_forward_ms_per_image": 1e3 * clip_fwd / batch,
           "aesthetic_forward_ms_per_image": 1e3 * aes_fwd / batch, "lora_rank": rank}
    if rank <= 0:  # --rank 0: forwards only
        print(json.dumps(out))
        return
    hyper = lora_copy(gen.unet, rank)
    params = [p for p in hyper.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3)
    out["lora_params"] = sum(p.numel() for p in params)

    def step():
        text = gen.text_table[prompt]
        f = hyper(noise, text)
        image = gen(noise + f, prompt)[0]
        loss = -clip(image, prompt).mean() + 0.5 * (f ** 2).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)  # as hypernoise's trainer (gradient-norm clip 1)
        opt.step()
    try:
        out["hypernoise_step_ms"] = 1e3 * timed(step, steps)
    except RuntimeError as e:  # e.g. out of memory (under ulimit -v): keep the forwards' figures
        out["hypernoise_step_error"] = str(e).splitlines()[0][:300]
    print(json.dumps(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="tiny", choices=sorted(SIZES))
    ap.add_argument("--out", help="output folder (default: testdata for tiny, testdata/t2i-<size> otherwise)")
    ap.add_argument("--bench", action="store_true", help="time PyTorch's forward and training step, print JSON")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--rank", type=int, default=4, help="LoRA rank of the timed training step (0: forwards only)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--attention", default="bmm", choices=["bmm", "baddbmm"], help="attention form timed by --bench")
    ap.add_argument("--external", action="store_true", help="store weights as external data (always for sd-turbo)")
    ap.add_argument("--only", help="comma-separated ONNX files to write (default: all), e.g. t2i_gen_bmm.onnx,t2i_clip.onnx")
    a = ap.parse_args()
    if a.bench:
        bench(a.size, a.batch or SIZES[a.size]["batch"], a.rank, a.steps, a.threads, a.attention)
        return
    out = a.out or (HERE if a.size == "tiny" else os.path.join(HERE, "t2i-" + a.size))
    make(a.size, out, a.only.split(",") if a.only else None, True if a.external else None)


if __name__ == "__main__":
    main()
