# PyTorch-CPU anchor for one HyperNoise training step on the embedded Fashion-MNIST default, v2
# architecture (models/fashion/arch2.go): a LoRA (rank 8, alpha 16) copy of the one-step student
# U-Net as the hypernetwork, with only its output conv's LoRA branch as output; the frozen student
# U-Net, the v2 conv decoder and the reward classifier; align reward (log p(c|x)), mean-square
# regularizer 0.5 mean(f^2), AdamW, batch 32. Written for `hypernoise bench` (which embeds it) as the
# v2 twin of ../shared/bench/torch_hypernoise_step.py (v1's MLP). Random weights: it times the step.
# Usage: python3 torch_hypernoise_step_v2.py [batch] [threads]  -> prints ms/step (median of 30)
import sys, time, math, torch, torch.nn as nn, torch.nn.functional as F
B = int(sys.argv[1]) if len(sys.argv) > 1 else 32
torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
C, R, CONV, DENSE, SIDE = 128, 8, 32, 384, 7

class LoRALinear(nn.Module):  # x W + b (+ 2 x A B): nn.Dense under LoRA
    def __init__(s, i, o, rank=0):
        super().__init__(); s.base = nn.Linear(i, o); s.base.requires_grad_(False); s.rank = rank
        if rank:
            s.A = nn.Parameter(torch.randn(i, rank) / rank); s.B = nn.Parameter(torch.zeros(rank, o))
    def forward(s, x):
        y = s.base(x)
        return y + (x @ s.A @ s.B) * 2.0 if s.rank else y

class LoRAConv(nn.Module):  # k x k "same" conv (+ 2 * 1x1(kxk conv to rank)): nn.Conv under LoRA
    def __init__(s, i, o, k=3, rank=0, only_lora=False):
        super().__init__(); s.only = only_lora and rank > 0; s.rank = rank
        if not s.only:
            s.base = nn.Conv2d(i, o, k, padding=k // 2); s.base.requires_grad_(False)
        if rank:
            s.A = nn.Conv2d(i, rank, k, padding=k // 2, bias=False); nn.init.normal_(s.A.weight, std=1 / rank)
            s.B = nn.Conv2d(rank, o, 1, bias=False); nn.init.zeros_(s.B.weight)
    def forward(s, x):
        d = s.B(s.A(x)) * 2.0 if s.rank else 0
        return d if s.only else s.base(x) + d

def timefeat(t, n=64):
    f = torch.exp(torch.linspace(0, math.log(1000), n // 2)); a = t[:, None] * f
    return torch.cat([a.sin(), a.cos()], -1)

class ResBlock(nn.Module):  # h + conv2(silu(conv1(silu(h)) + cond W))
    def __init__(s, c, rank):
        super().__init__(); s.c1 = LoRAConv(c, c, 3, rank); s.cond = LoRALinear(C, c, rank); s.c2 = LoRAConv(c, c, 3, rank)
    def forward(s, h, cond):
        return h + s.c2(F.silu(s.c1(F.silu(h)) + s.cond(cond)[:, :, None, None]))

class Flow2(nn.Module):  # flowNet2: a small U-Net on the 7x7x4 latent with a dense bottleneck
    def __init__(s, rank=0):
        super().__init__(); L = lambda i, o: LoRALinear(i, o, rank)
        s.time = L(64, C); s.cls = nn.Embedding(11, C); s.cls.requires_grad_(False); s.cond = L(2 * C, C)
        s.inp = LoRAConv(4, CONV, 3, rank); s.down = ResBlock(CONV, rank)
        s.mid_in = L(SIDE * SIDE * CONV, DENSE); s.mid_in_c = L(C, DENSE)
        s.mid = nn.ModuleList([L(DENSE, DENSE) for _ in range(2)]); s.mid_c = nn.ModuleList([L(C, DENSE) for _ in range(2)])
        s.mid_out = L(DENSE, SIDE * SIDE * CONV); s.up = ResBlock(CONV, rank)
        s.out = LoRAConv(CONV, 4, 3, rank, only_lora=True)
    def forward(s, x, t, c):
        cond = F.silu(s.cond(F.silu(torch.cat([s.time(timefeat(t)), s.cls(c)], -1))))
        skip = s.down(s.inp(x), cond)
        h = F.silu(s.mid_in(F.silu(skip).flatten(1)) + s.mid_in_c(cond))
        for m, mc in zip(s.mid, s.mid_c): h = h + F.silu(m(h) + mc(cond))
        up = s.mid_out(h).view(-1, CONV, SIDE, SIDE)
        return s.out(F.silu(s.up(skip + up, cond)))

class Decoder2(nn.Module):  # decoderLogits2 + the latent's de-standardization and the sigmoid
    def __init__(s):
        super().__init__(); s.c1 = nn.Conv2d(4, 48, 3, padding=1); s.r1 = nn.Conv2d(48, 48, 3, padding=1); s.r2 = nn.Conv2d(48, 48, 3, padding=1)
        s.c2 = nn.Conv2d(48, 128, 1); s.c3 = nn.Conv2d(32, 32, 3, padding=1); s.o = nn.Conv2d(32, 4, 3, padding=1)
        s.mu = torch.zeros(1, 4, 1, 1); s.sd = torch.ones(1, 4, 1, 1)
    def forward(s, z):
        h = s.c1(z * s.sd + s.mu); h = h + s.r2(F.silu(s.r1(F.silu(h))))
        h = F.pixel_shuffle(F.silu(s.c2(F.silu(h))), 2); h = F.silu(s.c3(h))
        return torch.sigmoid(F.pixel_shuffle(s.o(h), 2))

class Classifier(nn.Module):  # the reward classifier (unchanged from v1)
    def __init__(s):
        super().__init__(); s.c1 = nn.Conv2d(4, 32, 3, padding=1); s.n1 = nn.GroupNorm(8, 32); s.c2 = nn.Conv2d(32, 64, 3, 2, 1)
        s.n2 = nn.GroupNorm(8, 64); s.c3 = nn.Conv2d(64, 64, 3, padding=1); s.n3 = nn.GroupNorm(8, 64); s.d = nn.Linear(3136, 128); s.o = nn.Linear(128, 10)
    def forward(s, x):
        h = F.pixel_unshuffle(x, 2); h = F.silu(s.n1(s.c1(h))); h = F.silu(s.n2(s.c2(h))); h = F.silu(s.n3(s.c3(h)))
        return s.o(F.silu(s.d(h.flatten(1))))

student, hyper, dec, clf = Flow2(), Flow2(R), Decoder2(), Classifier()
student.out = LoRAConv(CONV, 4, 3)  # the frozen student's own output conv
for m in (student, dec, clf): m.requires_grad_(False)
params = [p for p in hyper.parameters() if p.requires_grad]
opt = torch.optim.AdamW(params, 1e-3, weight_decay=1e-4)
def step():
    eps = torch.randn(B, 4, SIDE, SIDE); c = torch.randint(0, 10, (B,)); t = torch.ones(B)
    f = hyper(eps, t, c); z = student(eps + f, t, c)
    r = F.log_softmax(clf(dec(z)), -1).gather(1, c[:, None]).squeeze(1)
    loss = (-r + 0.5 * f.square().flatten(1).mean(1)).mean()
    opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(params, 1.0); opt.step()
for _ in range(5): step()
ts = []
for _ in range(30):
    t0 = time.perf_counter(); step(); ts.append(time.perf_counter() - t0)
ts.sort(); print(f"torch hypernoise step b{B}: {ts[15]*1e3:.2f} ms (min {ts[0]*1e3:.2f}) threads {torch.get_num_threads()} arch v2")
