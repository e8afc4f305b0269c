#!/usr/bin/env python3
"""PyTorch side of scripts/device-check.sh: times, on --device cpu|cuda and in --dtype f32|bf16, the
same HyperNoise training step hypernoise times, and prints one JSON line.

  torch_twin.py t2i --size tiny|small|sd-turbo [--batch B] [--rank R] [--steps N] [--device cuda] [--dtype bf16]
      the T2I fixture family's step (models/onnx/testdata/make_t2i.py: its models, built by importing
      that script, and its LoRA copy of the UNet): eps' = eps + f(eps), the frozen generator, the clip
      reward, loss = -reward + 0.5 mean(f^2), backward, AdamW.
  torch_twin.py default [--batch B] [--steps N] [--device cuda] [--dtype bf16]
      the embedded default's step, by running bench/torch/torch_hypernoise_step_v2.py unchanged on
      the device (torch's default device set to it, its clock synchronized with the device).

bf16 is PyTorch's autocast (products and convolutions in bfloat16; weights, AdamW state and the loss
in float32), the recipe hypernoise's --dtype bf16 applies. Times are in ms, after a first step timed
apart (it allocates and autotunes) and two warm-up steps; on CUDA every clock read synchronizes the
device first, and the peak memory torch allocated is reported.
"""
import argparse
import contextlib
import io
import json
import os
import re
import runpy
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def clock(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter()


def autocast(device, dtype):
    if dtype == "f32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16)


def peak_memory(device):
    return torch.cuda.max_memory_allocated() if device.startswith("cuda") else None


def t2i(a):
    sys.path.insert(0, os.path.join(ROOT, "models", "onnx", "testdata"))
    import make_t2i as fx  # the fixture family's models; nothing is copied here
    if a.device.startswith("cuda") and hasattr(torch, "set_default_device"):
        torch.set_default_device(a.device)  # tensors the models create in forward land on the device
    c, gen, _, clip, _, _ = fx.build(a.size)
    gen.set_form("bmm")
    gen, clip = gen.to(a.device), clip.to(a.device)
    for p in list(gen.parameters()) + list(clip.parameters()):
        p.requires_grad_(False)
    batch = a.batch or c["batch"]
    lat = c["gen"]["latent"]
    noise = torch.randn(batch, 4, lat, lat, generator=torch.Generator(device="cpu").manual_seed(2), device="cpu").to(a.device)
    prompt = (torch.arange(batch, device="cpu") % c["gen"]["n_prompts"]).to(a.device)
    hyper = fx.lora_copy(gen.unet, a.rank).to(a.device)
    params = [p for p in hyper.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3)

    def step():
        with autocast(a.device, a.dtype):
            f = hyper(noise, gen.text_table[prompt])
            image = gen(noise + f, prompt)[0]
            loss = -clip(image, prompt).float().mean() + 0.5 * (f.float() ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss
    out = timed(step, a)
    out.update(model="t2i-" + a.size, batch=batch, lora_rank=a.rank, lora_params=sum(p.numel() for p in params))
    return out


def timed(step, a):
    t0 = clock(a.device)
    step()
    first = clock(a.device) - t0
    for _ in range(2):
        step()
    times = []
    for _ in range(a.steps):
        t0 = clock(a.device)
        step()
        times.append(clock(a.device) - t0)
    times.sort()
    return {"first_step_s": first, "step_ms": 1e3 * times[len(times) // 2], "min_step_ms": 1e3 * times[0],
            "steps": a.steps, "peak_memory_bytes": peak_memory(a.device)}


def default(a):
    script = os.path.join(ROOT, "bench", "torch", "torch_hypernoise_step_v2.py")
    if a.device.startswith("cuda"):
        torch.set_default_device(a.device)
        real = time.perf_counter
        time.perf_counter = lambda: (torch.cuda.synchronize(), real())[1]
    sys.argv = [script, str(a.batch or 32), str(torch.get_num_threads())]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), autocast(a.device, a.dtype):
        runpy.run_path(script, run_name="__main__")
    m = re.search(r"b\d+: ([0-9.]+) ms \(min ([0-9.]+)\)", buf.getvalue())
    if not m:
        raise SystemExit("unexpected output from %s: %r" % (script, buf.getvalue()))
    return {"model": "fashion-default-v2", "batch": a.batch or 32, "step_ms": float(m.group(1)),
            "min_step_ms": float(m.group(2)), "steps": 30, "peak_memory_bytes": peak_memory(a.device)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["t2i", "default"])
    ap.add_argument("--size", default="tiny", choices=["tiny", "small", "sd-turbo"])
    ap.add_argument("--batch", type=int, default=0)
    ap.add_argument("--rank", type=int, default=4)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="f32", choices=["f32", "bf16"])
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    out = t2i(a) if a.what == "t2i" else default(a)
    out.update(device=a.device, dtype=a.dtype, torch=torch.__version__,
               device_name=torch.cuda.get_device_name(0) if a.device.startswith("cuda") else "cpu")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
