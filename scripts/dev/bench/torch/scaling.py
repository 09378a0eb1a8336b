#!/usr/bin/env python3
"""The PyTorch side of make bench's scaling workloads: BigGAN and PGGAN training at 64 and 128 px,
the same iteration as ../shared/bench/torch_reference.py's biggan32 and pggan32 (whose layers this
reuses) at larger images, eager or compiled (torch.compile, inductor; its compile time, the first
iterations, reported apart). luagan's side is scripts/dev/bench/gan_workloads.lua.

    python scripts/dev/bench/torch/scaling.py biggan64 --steps 5 --threads 2 [--compile] [--batch 32]

biggan64 / biggan128: BigGAN-PyTorch's arch tables (G in / out channels 16 16 8 4 [2] x ch, D
3 -> 1 2 4 8 16 [16] x ch), ch 32, hierarchical z 120 in one chunk per G block plus one, shared
embedding 128, G attention at half the resolution (32, 64), spectral norm everywhere, batch 16 / 8,
hinge loss, orthogonal regularization 1e-4, EMA 0.9999. pggan64 / pggan128: PGGAN at 64 / 128
during the last fade-in (alpha 0.5), 64 feature maps at every resolution, batch 16 / 8, WGAN-GP
by double backprop, drift, Gs.
"""
import argparse
import json
import math
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.environ.get("SHARED_BENCH") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../../../shared/bench"))
import torch_reference as R  # noqa: E402

SN = R.SN
# (in, out, resolution after the block) per G block; (in, out, downsample) per D block, as multiples of ch
G_ARCH = {64: ([16, 16, 8, 4], [16, 8, 4, 2], [8, 16, 32, 64]),
          128: ([16, 16, 8, 4, 2], [16, 8, 4, 2, 1], [8, 16, 32, 64, 128])}
D_ARCH = {64: ([0, 1, 2, 4, 8], [1, 2, 4, 8, 16], [True, True, True, True, False]),
          128: ([0, 1, 2, 4, 8, 16], [1, 2, 4, 8, 16, 16], [True, True, True, True, True, False])}


class BigG(nn.Module):
    def __init__(s, res, ch, dim_z=120, shared_dim=128, n_classes=10, attn_res=None):
        super().__init__()
        ins, outs, ress = G_ARCH[res]
        s.chunk = dim_z // (len(ins) + 1)
        s.w = ins[0] * ch
        s.shared = nn.Embedding(n_classes, shared_dim)
        s.linear = SN(nn.Linear(s.chunk, s.w * 16))
        s.blocks = nn.ModuleList()
        for cin, cout, r in zip(ins, outs, ress):
            blk = nn.ModuleList([R.GBlock(cin * ch, cout * ch, shared_dim + s.chunk)])
            if r == attn_res:
                blk.append(R.Attention(cout * ch))
            s.blocks.append(blk)
        s.out_bn = nn.BatchNorm2d(outs[-1] * ch)
        s.out_conv = SN(nn.Conv2d(outs[-1] * ch, 3, 3, padding=1))
        for m in s.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight_orig if hasattr(m, "weight_orig") else m.weight, 0, 0.02)

    def forward(s, z, e):
        zs = torch.split(z, s.chunk, 1)
        h = s.linear(zs[0]).view(z.size(0), s.w, 4, 4)
        for i, blk in enumerate(s.blocks):
            c = torch.cat([e, zs[i + 1]], 1)
            for b in blk:
                h = b(h, c)
        return torch.tanh(s.out_conv(F.relu(s.out_bn(h))))


class BigD(nn.Module):
    def __init__(s, res, ch, n_classes=10):
        super().__init__()
        ins, outs, downs = D_ARCH[res]
        s.blocks = nn.ModuleList([R.DBlock(cin * ch if cin else 3, cout * ch, down, i > 0)
                                  for i, (cin, cout, down) in enumerate(zip(ins, outs, downs))])
        w = outs[-1] * ch
        s.linear = SN(nn.Linear(w, 1))
        s.embed = SN(nn.Embedding(n_classes, w))
        for m in s.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight_orig if hasattr(m, "weight_orig") else m.weight, 0, 0.02)

    forward = R.BigD.forward


def biggan_workload(res, ch, bs, compiled):
    G, D = BigG(res, ch, attn_res=res // 2), BigD(res, ch)
    Gema = BigG(res, ch, attn_res=res // 2)
    Gema.load_state_dict(G.state_dict())
    oG = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.0, 0.999), eps=1e-8)
    oD = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.0, 0.999), eps=1e-8)
    Gc, Dc = (torch.compile(G), torch.compile(D)) if compiled else (G, D)
    x = torch.rand(bs, 3, res, res) * 2 - 1
    y = torch.randint(0, 10, (bs,))
    dim_z = G.chunk * (len(G.blocks) + 1)

    def it():  # torch_reference.biggan_workload's iteration
        z, yf = torch.randn(bs, dim_z), torch.randint(0, 10, (bs,))
        with torch.no_grad():
            fake = Gc(z, G.shared(yf))
        out = Dc(torch.cat([fake, x]), torch.cat([yf, y]))
        df, dr = out[:bs], out[bs:]
        ld = F.relu(1 - dr).mean() + F.relu(1 + df).mean()
        oD.zero_grad()
        ld.backward()
        oD.step()
        z, yf = torch.randn(bs, dim_z), torch.randint(0, 10, (bs,))
        lg = -Dc(Gc(z, G.shared(yf)), yf).mean()
        oG.zero_grad()
        lg.backward()
        R.ortho_(G, 1e-4, [G.shared.weight])
        oG.step()
        with torch.no_grad():
            for pe, p in zip(Gema.state_dict().values(), G.state_dict().values()):
                if pe.dtype.is_floating_point:
                    pe.mul_(0.9999).add_(p, alpha=1 - 0.9999)
    return it, sum(p.numel() for p in G.parameters()) + sum(p.numel() for p in D.parameters())


def pggan_workload(res, nf, bs, compiled):
    G, D = R.PG(nf, res=res), R.PD(nf, res=res)
    Gema = R.PG(nf, res=res)
    Gema.load_state_dict(G.state_dict())
    oG = torch.optim.Adam(G.parameters(), 1e-3, betas=(0.0, 0.99), eps=1e-8)
    oD = torch.optim.Adam(D.parameters(), 1e-3, betas=(0.0, 0.99), eps=1e-8)
    Gc, Dc = (torch.compile(G), torch.compile(D)) if compiled else (G, D)
    x = torch.randn(bs, 3, res, res)
    alpha = 0.5

    def it():  # torch_reference.pggan_workload's iteration
        z = torch.randn(bs, 128)
        with torch.no_grad():
            fake = Gc(z, alpha)
        dr, df = Dc(x, alpha), Dc(fake, alpha)
        u = torch.rand(bs, 1, 1, 1)
        xh = (x + u * (fake - x)).requires_grad_(True)
        g, = torch.autograd.grad(Dc(xh, alpha).sum(), xh, create_graph=True)
        ld = df.mean() - dr.mean() + 10.0 * ((g.flatten(1).norm(dim=1) - 1) ** 2).mean() + 0.001 * (dr ** 2).mean()
        oD.zero_grad()
        ld.backward()
        oD.step()
        lg = -Dc(Gc(torch.randn(bs, 128), alpha), alpha).mean()
        oG.zero_grad()
        lg.backward()
        oG.step()
        with torch.no_grad():
            for pe, p in zip(Gema.parameters(), G.parameters()):
                pe.lerp_(p, 1 - 0.999)
    return it, sum(p.numel() for p in G.parameters()) + sum(p.numel() for p in D.parameters())


WORKLOADS = {"biggan64": (biggan_workload, 64, 32, 16), "biggan128": (biggan_workload, 128, 32, 8),
             "pggan64": (pggan_workload, 64, 64, 16), "pggan128": (pggan_workload, 128, 64, 8)}

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("workload", choices=sorted(WORKLOADS))
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2, help="untimed iterations first (with --compile, at least 3: the compile)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--compile", action="store_true", help="torch.compile G and D (inductor)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    make, res, width, batch = WORKLOADS[a.workload]
    it, n = make(res, width, a.batch or batch, a.compile)
    t0 = time.perf_counter()
    for _ in range(max(a.warmup, 3 if a.compile else 0)):
        it()
    warm = time.perf_counter() - t0
    ts = []
    for _ in range(a.steps):
        t = time.perf_counter()
        it()
        ts.append(time.perf_counter() - t)
    print(json.dumps(dict(workload=a.workload, mode="compile" if a.compile else "eager", batch=a.batch or batch,
                          ms_per_iter=round(1000 * statistics.median(ts), 1), ms_min=round(1000 * min(ts), 1),
                          ms_max=round(1000 * max(ts), 1), warmup_s=round(warm, 1),
                          peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                          params=n, threads=a.threads, torch=torch.__version__)))
