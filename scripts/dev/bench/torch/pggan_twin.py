"""PyTorch twin of the official PGGAN recipe (tkarras/progressive_growing_of_gans: networks.py
G_paper / D_paper, loss.py G_wgan / D_wgangp, train.py's schedule and loop, tfutil.py's
Optimizer and moving average), written from its semantics for luagan's side-by-side and for
the float64 check of luagan's recipe (scripts/dev/bench/pggan_equivalence.py).

Two ways to compute the same function:
- full_res=True, the official's: G always emits full-resolution images (lower levels nearest-
  upscaled, consecutive toRGBs blended by lerp_clip on lod) and D always takes them (box-
  downscaling internally, fromRGB paths blended by lerp_clip); every layer runs at every lod.
- full_res=False, luagan's (scripts/lib/models/pggan.lua): G at level l emits 4*2^(l-1) px and
  D takes that size, so only the running levels cost anything; the penalty's gradient norm is
  divided by 2^floor(lod) to be the one the official takes w.r.t. the full-resolution image.
  This is the mode of the timed side-by-side: the same work per iteration as luagan's.

As a script: trains on Fashion-MNIST (padded 28->32 with -1, in [-1, 1]) for a wall-clock
budget with the options of luagan's make demo-pggan (scripts/configs/demo_pggan.lua) and writes
N samples of Gs at full resolution, clipped to [-1, 1], as safetensors {"images": (N,1,32,32)}
for luagan's metrics to judge (luagan scripts/dev/bench/score_samples.lua or the PGGAN evaluation).

  FMNIST_ROOT=/usr/share/datasets/fashion-mnist \\
  .venv-torch/bin/python scripts/dev/bench/torch/pggan_twin.py OUT.safetensors --minutes 15 --seed 1 --threads 2
  ... --growth kimg --train-kimg 60 --trans-kimg 60 --total-kimg 420      (the paper's growth by images)
  ... --no-growing | --no-mbstd | --no-wscale --lr 1e-4 | --no-pixelnorm    (PGGAN's Table 1 rows)
"""
import argparse
import gzip
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

SQRT2 = math.sqrt(2.0)


# ----------------------------------------------------------------------------------------------
# Layers (networks.py: get_weight, conv2d, dense, apply_bias, pixel_norm, minibatch_stddev_layer)

class WConv(nn.Module):
    """A stride-1 'SAME' convolution whose bias is added unscaled after it. With use_wscale the
    stored weight is N(0, 1) and is multiplied by gain/sqrt(fan_in) at run time (equalized LR:
    Adam then sees every weight at the same scale); without it, the He constant goes into the
    initial values instead (networks.py get_weight). Weight layout (out, in, kh, kw), as luagan's."""

    def __init__(self, cin, cout, k, gain=SQRT2, use_wscale=True):
        super().__init__()
        std = gain / math.sqrt(cin * k * k)
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k) * (1.0 if use_wscale else std))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.scale = std if use_wscale else None
        self.pad = k // 2

    def forward(self, x):
        w = self.weight * self.scale if self.scale is not None else self.weight
        return F.conv2d(x, w, self.bias, padding=self.pad)


class WLinear(nn.Module):
    """dense() with optional apply_bias: y = x W^T (+ b), W (out, in) as luagan's nn.Linear."""

    def __init__(self, cin, cout, gain=SQRT2, use_wscale=True, bias=True):
        super().__init__()
        std = gain / math.sqrt(cin)
        self.weight = nn.Parameter(torch.randn(cout, cin) * (1.0 if use_wscale else std))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.scale = std if use_wscale else None

    def forward(self, x):
        w = self.weight * self.scale if self.scale is not None else self.weight
        return F.linear(x, w, self.bias)


def act(x):
    return F.leaky_relu(x, 0.2)   # networks.py leaky_relu: max(0.2x, x)


def pixel_norm(x, eps=1e-8):
    # per pixel over channels, eps inside the root (networks.py pixel_norm)
    return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + eps)


def minibatch_stddev(x, group_size):
    """networks.py minibatch_stddev_layer: strided groups (sample n is in group n mod N/G, from
    the reshape [G, -1, C, H, W]), biased variance over the group, sqrt(+1e-8), averaged over
    C, H, W to one value per group, appended as one more channel."""
    n, c, h, w = x.shape
    g = min(group_size, n)
    y = x.reshape(g, -1, c, h, w)
    y = (y - y.mean(dim=0, keepdim=True)).square().mean(dim=0)
    y = torch.sqrt(y + 1e-8).mean(dim=(1, 2, 3), keepdim=True)      # [N/G, 1, 1, 1]
    y = y.repeat(g, 1, h, w)                                          # tile: row n gets group n mod N/G
    return torch.cat([x, y], dim=1)


def upscale(x, k=2):
    return x if k == 1 else x.repeat_interleave(k, dim=2).repeat_interleave(k, dim=3)   # nearest (upscale2d)


def downscale(x, k=2):
    return x if k == 1 else F.avg_pool2d(x, k)   # 2x2 box per factor of 2 (downscale2d)


def lerp_clip(a, b, t):
    # networks.py lerp_clip: a + (b - a) * clip(t, 0, 1); t is a Python float here
    # (at t = 0 or 1 both inputs stay in the graph with a zero gradient, as in the official)
    return a + (b - a) * min(max(t, 0.0), 1.0)


def nf_of(o, stage):
    return min(int(o["fmap_base"] / (2.0 ** (stage * o["fmap_decay"]))), o["fmap_max"])


def levels_of(resolution):
    return int(round(math.log2(resolution))) - 1     # 4x4 is level 1


def level_of(lod, resolution):
    """The level that runs at lod and its fade weight t = lod - floor(lod) (1 -> 0 during a fade)."""
    f = math.floor(lod)
    return levels_of(resolution) - f, lod - f


DEFAULTS = dict(resolution=32, channels=1, latent=128, fmap_base=1024, fmap_max=32, fmap_decay=1.0, mbstd_group=4,
                use_wscale=True, use_pixelnorm=True)


# ----------------------------------------------------------------------------------------------
# Networks (networks.py G_paper / D_paper, structure 'linear', fused_scale=False, no labels)

class Generator(nn.Module):
    """G_paper. Names follow luagan's state dict (dense, dense_bias, conv4, blocks.<l-2>.<0|1>,
    toRGB.<l-1>) so weights load one to one."""

    def __init__(self, **kw):
        super().__init__()
        o = dict(DEFAULTS, **kw)
        self.o, self.L = o, levels_of(o["resolution"])
        ws, nf1 = o["use_wscale"], nf_of(o, 1)
        self.nf1 = nf1
        # 4x4: dense latent -> nf(1)*16 with gain sqrt(2)/4 (what the Theano 4x4 'full' conv was),
        # reshaped to (nf(1), 4, 4) and one bias per channel after the reshape
        self.dense = WLinear(o["latent"], nf1 * 16, SQRT2 / 4, ws, bias=False)
        self.dense_bias = nn.Parameter(torch.zeros(nf1))
        self.conv4 = WConv(nf1, nf1, 3, SQRT2, ws)
        self.blocks = nn.ModuleList()
        self.toRGB = nn.ModuleList([WConv(nf1, o["channels"], 1, 1.0, ws)])   # linear, gain 1, no tanh
        for level in range(2, self.L + 1):
            cin, cout = nf_of(o, level - 1), nf_of(o, level)
            self.blocks.append(nn.ModuleList([WConv(cin, cout, 3, SQRT2, ws), WConv(cout, cout, 3, SQRT2, ws)]))
            self.toRGB.append(WConv(cout, o["channels"], 1, 1.0, ws))
        self.pn = pixel_norm if o["use_pixelnorm"] else (lambda x: x)

    def base(self, z):
        # per layer: conv -> bias -> lrelu -> pixelnorm; the latent is pixel-normalized too
        h = self.dense(self.pn(z)).view(-1, self.nf1, 4, 4) + self.dense_bias.view(1, -1, 1, 1)
        h = self.pn(act(h))
        return self.pn(act(self.conv4(h)))

    def block(self, level, h):
        for c in self.blocks[level - 2]:
            h = self.pn(act(c(h)))
        return h

    def forward(self, z, lod, full_res=True):
        L = self.L
        h = self.base(z)
        if full_res:
            # 'linear' structure: every level runs; the image is grown level by level and each
            # level's toRGB replaces the upscaled previous image by lerp_clip(new, old, lod_in - lod)
            img = self.toRGB[0](h)
            for level in range(2, L + 1):
                h = self.block(level, upscale(h))
                img = lerp_clip(self.toRGB[level - 1](h), upscale(img), lod - (L - level))
            return img
        level, t = level_of(lod, self.o["resolution"])
        prev = None
        for l in range(2, level + 1):
            if l == level and t > 0:
                prev = upscale(self.toRGB[l - 2](h))
            h = self.block(l, upscale(h))
        img = self.toRGB[level - 1](h)
        return img if prev is None else lerp_clip(img, prev, t)


class Discriminator(nn.Module):
    """D_paper. Names follow luagan's (fromRGB.<l-1>, blocks.<l-2>.<0|1>, conv4, dense0, dense1)."""

    def __init__(self, **kw):
        super().__init__()
        o = dict(DEFAULTS, **kw)
        self.o, self.L = o, levels_of(o["resolution"])
        ws, nf0, nf1 = o["use_wscale"], nf_of(o, 0), nf_of(o, 1)
        self.fromRGB = nn.ModuleList([WConv(o["channels"], nf_of(o, l), 1, SQRT2, ws) for l in range(1, self.L + 1)])
        self.blocks = nn.ModuleList([nn.ModuleList([WConv(nf_of(o, l), nf_of(o, l), 3, SQRT2, ws),
                                                    WConv(nf_of(o, l), nf_of(o, l - 1), 3, SQRT2, ws)])
                                     for l in range(2, self.L + 1)])
        self.group = o["mbstd_group"]
        self.conv4 = WConv(nf1 + (1 if self.group > 0 else 0), nf1, 3, SQRT2, ws)
        self.dense0 = WLinear(nf1 * 16, nf0, SQRT2, ws)
        self.dense1 = WLinear(nf0, 1, 1.0, ws)     # the score: linear, gain 1

    def block(self, level, h):
        for c in self.blocks[level - 2]:
            h = act(c(h))
        return downscale(h)

    def head(self, h):
        if self.group > 0:
            h = minibatch_stddev(h, self.group)
        h = act(self.conv4(h))
        h = act(self.dense0(h.flatten(1)))
        return self.dense1(h)

    def forward(self, x, lod, full_res=True):
        L = self.L
        if full_res:
            # 'linear' structure: fromRGB at full resolution, then per level the block's output
            # is replaced by fromRGB of the box-downscaled image by lerp_clip(x, y, lod_in - lod)
            img, h = x, act(self.fromRGB[L - 1](x))
            for level in range(L, 1, -1):
                h = self.block(level, h)
                img = downscale(img)
                h = lerp_clip(h, act(self.fromRGB[level - 2](img)), lod - (L - level))
            return self.head(h)
        level, t = level_of(lod, self.o["resolution"])
        h = act(self.fromRGB[level - 1](x))
        for l in range(level, 1, -1):
            h = self.block(l, h)
            if l == level and t > 0:
                h = lerp_clip(h, act(self.fromRGB[l - 2](downscale(x))), t)
        return self.head(h)


# ----------------------------------------------------------------------------------------------
# Schedule (train.py TrainingSchedule) and luagan's shares growth (recipes/pggan.lua shareSchedule)

def kimg_lod(kimg, resolution, train_kimg, trans_kimg, initial_resolution=4):
    """lod after `kimg` thousand reals: stabilise each level train_kimg, then fade the next in
    over trans_kimg (train.py TrainingSchedule; same float operations, so the same doubles)."""
    phase_dur = train_kimg + trans_kimg
    phase_idx = int(math.floor(kimg / phase_dur)) if phase_dur > 0 else 0
    phase_kimg = kimg - phase_idx * phase_dur
    lod = int(round(math.log2(resolution)))
    lod -= math.floor(math.log2(initial_resolution))
    lod -= phase_idx
    if trans_kimg > 0:
        lod -= max(phase_kimg - train_kimg, 0.0) / trans_kimg
    return max(lod, 0.0)


def share_lod(progress, resolution, level_shares, fade_share):
    """luagan's growth by shares of the run (M.shareSchedule): level l takes level_shares[res]
    (normalized) of the run, the first fade_share of which fades it in (the 4x4 level has no fade)."""
    levels = levels_of(resolution)
    shares = [float(level_shares[4 << (l - 1)]) for l in range(1, levels + 1)]
    total = sum(shares)
    p, at = min(max(progress, 0.0), 1.0), 0.0
    for level in range(1, levels + 1):
        share = shares[level - 1] / total
        if p < at + share or level == levels:
            q = min((p - at) / share, 1.0)
            settled = levels - level
            if level > 1 and q < fade_share:
                return settled + 1 - q / fade_share
            return float(settled)
        at += share


# ----------------------------------------------------------------------------------------------
# Optimizer (tfutil.Optimizer over tf.train.AdamOptimizer) and Gs (Network.setup_as_moving_average_of)

class TFAdam:
    """TensorFlow's Adam, which the official trains with: m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2);
    p -= lr sqrt(1 - b2^t)/(1 - b1^t) * m / (sqrt(v) + eps) -- eps added to the uncorrected sqrt(v)
    (its 'epsilon hat'), unlike torch.optim.Adam. One step count per optimizer (TF's beta powers);
    reset() forgets m, v and t, as reset_optimizer_state re-initializes all of the optimizer's
    variables. Parameters without a gradient this step are left alone (the official's get zero
    gradients there, which leaves them unchanged as well). As tfutil.Optimizer, a step whose
    gradients are not all finite is skipped whole (no update, t unchanged); step() says if it ran."""

    def __init__(self, params, lr=1e-3, betas=(0.0, 0.99), eps=1e-8):
        self.params = list(params)
        self.lr, (self.b1, self.b2), self.eps = lr, betas, eps
        self.reset()

    def reset(self):
        self.t, self.m, self.v = 0, {}, {}

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self):
        ps = [p for p in self.params if p.grad is not None]
        if not ps:
            return False
        if not bool(torch.stack(torch._foreach_norm([p.grad for p in ps])).isfinite().all()):
            return False
        self.t += 1
        for p in ps:
            if p not in self.m:
                self.m[p], self.v[p] = torch.zeros_like(p), torch.zeros_like(p)
        gs, ms, vs = [p.grad for p in ps], [self.m[p] for p in ps], [self.v[p] for p in ps]
        torch._foreach_add_(ms, torch._foreach_mul(torch._foreach_sub(gs, ms), 1 - self.b1))
        torch._foreach_add_(vs, torch._foreach_mul(torch._foreach_sub(torch._foreach_mul(gs, gs), vs), 1 - self.b2))
        alpha = self.lr * math.sqrt(1 - self.b2 ** self.t) / (1 - self.b1 ** self.t)
        denom = torch._foreach_add(torch._foreach_sqrt(vs), self.eps)
        torch._foreach_addcdiv_(ps, ms, denom, value=-alpha)
        return True


@torch.no_grad()
def update_average(Gs, G, beta):
    # tfutil lerp(src, avg, beta) = G + (Gs - G) * beta on every trainable (lod is an argument here)
    for ps, p in zip(Gs.parameters(), G.parameters()):
        ps.sub_(p).mul_(beta).add_(p)


# ----------------------------------------------------------------------------------------------
# One run: the loop of train.py with the losses of loss.py

class Trainer:
    """G, D, their optimizers and Gs, stepped as train.py does: advance() re-reads the schedule
    (every minibatch_repeats minibatches) and resets Adam when floor(lod) or ceil(lod) changes;
    d_step() trains D on one minibatch and then moves Gs toward G; g_step() trains G with D's
    parameters out of the gradient. The inputs (reals, latents, mixing factors) can be given,
    for a replay of luagan's run, or drawn."""

    def __init__(self, G, D, Gs, *, lr=1e-3, betas=(0.0, 0.99), eps=1e-8, gp_lambda=10.0, gp_target=1.0, drift=0.001,
                 gs_beta=0.999, full_res=False, lr_dict=None):
        self.G, self.D, self.Gs = G, D, Gs
        self.optG = TFAdam([p for p in G.parameters() if p.requires_grad], lr, betas, eps)
        self.optD = TFAdam(D.parameters(), lr, betas, eps)
        self.base_lr, self.lr_dict = lr, lr_dict or {}
        self.gp_lambda, self.gp_target, self.drift, self.gs_beta = gp_lambda, gp_target, drift, gs_beta
        self.full_res, self.res = full_res, G.o["resolution"]
        self.lod, self.prev_lod, self.nimg = 0.0, -1.0, 0

    def advance(self, lod):
        """Takes the schedule's lod (train.py: once per minibatch_repeats minibatches)."""
        if math.floor(lod) != math.floor(self.prev_lod) or math.ceil(lod) != math.ceil(self.prev_lod):
            self.optG.reset()
            self.optD.reset()
        self.prev_lod = self.lod = lod
        lr = self.lr_dict.get(2 ** (levels_of(self.res) + 1 - math.floor(lod)), self.base_lr)
        self.optG.lr = self.optD.lr = lr

    def reals_at(self, x):
        """train.py process_reals on full-resolution reals: the level's reals (box-downscaled by
        2^floor(lod), what the dataset's mip level holds) faded toward their own 2x2 box average by
        t = lod - floor(lod); nearest-upscaled back to full resolution when full_res."""
        k = 2 ** math.floor(self.lod)
        t = self.lod - math.floor(self.lod)
        x = downscale(x, k)
        if t > 0:
            x = x + (upscale(downscale(x)) - x) * t
        return upscale(x, k) if self.full_res else x

    def d_step(self, real, z, u=None):
        """loss.py D_wgangp: D(fake) - D(real) + lambda (|grad| - target)^2 / target^2 at reals
        lerped toward fakes by one u ~ U(0, 1) per sample, + epsilon D(real)^2, all batch means.
        The norm is w.r.t. the full-resolution image: at native resolution, D's first act on it is a
        2^floor(lod) box-downscale, which divides the norm by that factor."""
        G, D, lod, fr = self.G, self.D, self.lod, self.full_res
        self.optD.zero_grad()
        real = self.reals_at(real)
        with torch.no_grad():
            fake = G(z, lod, fr)
        d_real, d_fake = D(real, lod, fr), D(fake, lod, fr)
        if u is None:
            u = torch.rand(real.shape[0], 1, 1, 1, dtype=real.dtype)
        mixed = (real + (fake - real) * u).requires_grad_(True)
        grad, = torch.autograd.grad(D(mixed, lod, fr).sum(), mixed, create_graph=True)
        norms = grad.flatten(1).norm(dim=1)
        if not fr:
            norms = norms / 2 ** math.floor(lod)
        gp = (norms - self.gp_target).square() * (self.gp_lambda / self.gp_target ** 2)
        loss = (d_fake - d_real + self.drift * d_real.square()).mean() + gp.mean()
        loss.backward()
        self.optD.step()
        self.nimg += real.shape[0]
        if self.Gs is not None:
            update_average(self.Gs, G, self.gs_beta)   # train.py runs it with the D step, before G's
        return loss.detach()

    def g_step(self, z):
        """loss.py G_wgan: -D(G(z)); only G's variables are trained (D is out of the gradient)."""
        self.optG.zero_grad()
        self.D.requires_grad_(False)
        try:
            loss = -self.D(self.G(z, self.lod, self.full_res), self.lod, self.full_res).mean()
            loss.backward()
        finally:
            self.D.requires_grad_(True)
        self.optG.step()
        return loss.detach()


@torch.no_grad()
def sample_at(G, z, lod, full_res=False):
    """Images at full resolution clipped to [-1, 1] (the official's uint8 conversion saturates;
    G has no tanh); a lower level is nearest-upscaled, as the official's G outputs it."""
    x = G(z, lod, full_res)
    res = G.o["resolution"]
    return upscale(x, res // x.shape[-1]).clamp(-1, 1)


def build(**kw):
    G, D = Generator(**kw), Discriminator(**kw)
    Gs = Generator(**kw)
    Gs.load_state_dict(G.state_dict())   # Gs = G.clone('Gs')
    Gs.requires_grad_(False)
    return G, D, Gs


# ----------------------------------------------------------------------------------------------
# The side-by-side run

def fashion_mnist(root):
    """The train images as float in [-1, 1], padded 28 -> 32 with -1 (luagan's pad(2), scale(-1, 1))."""
    with gzip.open(os.path.join(root, "train-images-idx3-ubyte.gz")) as f:
        d = f.read()
    n = int.from_bytes(d[4:8], "big")
    x = torch.frombuffer(bytearray(d[16:16 + n * 784]), dtype=torch.uint8).reshape(n, 1, 28, 28)
    return F.pad(x.float().div(127.5).sub(1), (2, 2, 2, 2), value=-1.0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="safetensors file for the samples")
    ap.add_argument("--minutes", type=float, default=15.0, help="wall-clock budget (0: none; then --iters or --total-kimg)")
    ap.add_argument("--iters", type=int, default=0, help="iterations (with --growth shares: the run's length when --minutes 0)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--growth", choices=["shares", "kimg"], default="shares",
                    help="shares: luagan's demo schedule (levels take shares of the run); kimg: train.py's")
    ap.add_argument("--level-shares", default="0.5,1,2,8", help="shares of 4x4, 8x8, ... (demo_pggan.lua levelShares)")
    ap.add_argument("--fade-share", type=float, default=0.4, help="part of a level's share that fades it in")
    ap.add_argument("--train-kimg", type=float, default=60.0)
    ap.add_argument("--trans-kimg", type=float, default=60.0)
    ap.add_argument("--total-kimg", type=float, default=420.0, help="--growth kimg without --minutes/--iters: the run's length")
    ap.add_argument("--no-growing", action="store_true", help="Table 1 row (a): full resolution from the start")
    ap.add_argument("--fixed-lod", type=float, default=None, help="hold lod here (timing one level)")
    ap.add_argument("--no-mbstd", action="store_true", help="Table 1 rows a-d: no minibatch stddev")
    ap.add_argument("--no-wscale", action="store_true", help="Table 1 rows a-e: He init, no equalized LR (the paper: --lr 1e-4)")
    ap.add_argument("--no-pixelnorm", action="store_true", help="Table 1 rows a-f: no pixelwise normalization")
    ap.add_argument("--fmap-base", type=int, default=1024)
    ap.add_argument("--fmap-max", type=int, default=32)
    ap.add_argument("--latent", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--minibatch-dict", default="{}", help='JSON, e.g. {"4": 64} (train.py minibatch_dict)')
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lr-dict", default="{}", help='JSON per resolution (G_lrate_dict = D_lrate_dict)')
    ap.add_argument("--gp-lambda", type=float, default=10.0)
    ap.add_argument("--gp-target", type=float, default=1.0)
    ap.add_argument("--drift", type=float, default=0.001)
    ap.add_argument("--gs-beta", type=float, default=0.999)
    ap.add_argument("--mbstd-group", type=int, default=4)
    ap.add_argument("--minibatch-repeats", type=int, default=4)
    ap.add_argument("--samples", type=int, default=10000)
    ap.add_argument("--log-every", type=int, default=250)
    a = ap.parse_args(argv)

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    shares = [float(s) for s in a.level_shares.split(",")]
    level_shares = {4 << i: s for i, s in enumerate(shares)}
    mb_dict = {int(k): int(v) for k, v in json.loads(a.minibatch_dict).items()}
    lr_dict = {int(k): float(v) for k, v in json.loads(a.lr_dict).items()}
    X = fashion_mnist(os.environ.get("FMNIST_ROOT", "/usr/share/datasets/fashion-mnist"))
    n_data = X.shape[0]
    net = dict(resolution=32, channels=1, latent=a.latent, fmap_base=a.fmap_base, fmap_max=a.fmap_max,
               mbstd_group=0 if a.no_mbstd else a.mbstd_group, use_wscale=not a.no_wscale, use_pixelnorm=not a.no_pixelnorm)
    G, D, Gs = build(**net)
    tr = Trainer(G, D, Gs, lr=a.lr, gp_lambda=a.gp_lambda, gp_target=a.gp_target, drift=a.drift, gs_beta=a.gs_beta,
                 full_res=False, lr_dict=lr_dict)
    budget = a.minutes * 60
    if a.growth == "shares" and budget <= 0 and a.iters <= 0:
        sys.exit("--growth shares needs the run's length: --minutes or --iters")
    levels = levels_of(32)

    def minibatch(lod):
        return mb_dict.get(2 ** (levels + 1 - math.floor(lod)), a.batch_size)

    perm, pos = torch.randperm(n_data), 0

    def reals(n):   # shuffled epochs, as luagan's loader
        nonlocal perm, pos
        if pos + n > n_data:
            perm, pos = torch.randperm(n_data), 0
        idx = perm[pos:pos + n]
        pos += n
        return X[idx]

    def schedule(secs, it):
        if a.fixed_lod is not None:
            return a.fixed_lod
        if a.no_growing:
            return 0.0
        if a.growth == "kimg":
            return kimg_lod(tr.nimg / 1000.0, 32, a.train_kimg, a.trans_kimg)
        progress = secs / budget if budget > 0 else it / a.iters   # luagan's Run:progress()
        return share_lod(progress, 32, level_shares, a.fade_share)

    def more(it, secs):
        if budget > 0 and secs >= budget:
            return False
        if a.iters > 0 and it >= a.iters:
            return False
        if budget <= 0 and a.iters <= 0 and a.growth == "kimg" and it % a.minibatch_repeats == 0:
            return tr.nimg < a.total_kimg * 1000      # train.py: whole schedule periods up to total_kimg
        return True

    phases, per_level = [], {}
    t0, it = time.time(), 0
    secs = 0.0
    while more(it, secs):
        it += 1
        if (it - 1) % a.minibatch_repeats == 0:
            lod = schedule(secs, it)
            tr.advance(lod)
            level, t = level_of(lod, 32)
            name = ("fade %dx%d" if t > 0 else "%dx%d") % ((4 << (level - 1),) * 2)
            if not phases or phases[-1]["name"] != name:
                phases.append(dict(name=name, iter=it, kimg=tr.nimg / 1000.0, seconds=secs))
        b = minibatch(tr.lod)
        loss_d = tr.d_step(reals(b), torch.randn(b, a.latent))
        loss_g = tr.g_step(torch.randn(b, a.latent))
        secs = time.time() - t0
        if it % a.log_every == 0:
            print(json.dumps(dict(iter=it, secs=round(secs, 1), lod=round(tr.lod, 4), kimg=round(tr.nimg / 1000.0, 3),
                                  lossD=round(loss_d.item(), 5), lossG=round(loss_g.item(), 5))), flush=True)
    rows = []
    for i, ph in enumerate(phases):
        nxt = phases[i + 1] if i + 1 < len(phases) else dict(iter=it + 1, kimg=tr.nimg / 1000.0, seconds=secs)
        rows.append(dict(phase=ph["name"], fromIter=ph["iter"], iters=nxt["iter"] - ph["iter"],
                         kimg=round(nxt["kimg"] - ph["kimg"], 3), fromMinute=round(ph["seconds"] / 60, 2),
                         minutes=round((nxt["seconds"] - ph["seconds"]) / 60, 2),
                         itPerSec=round((nxt["iter"] - ph["iter"]) / max(nxt["seconds"] - ph["seconds"], 1e-9), 2)))
    print("%-10s %8s %8s %8s %9s %8s" % ("phase", "from it", "iters", "kimg", "minutes", "it/s"))
    for r in rows:
        print("%-10s %8d %8d %8.1f %9.2f %8.2f" % (r["phase"], r["fromIter"], r["iters"], r["kimg"], r["minutes"], r["itPerSec"]))
    # samples from Gs at the lod the run ended at, outside the budget (as luagan's evaluation)
    g = torch.Generator().manual_seed(a.seed + 7919)
    xs = torch.cat([sample_at(Gs, torch.randn(min(500, a.samples - i), a.latent, generator=g), tr.lod)
                    for i in range(0, a.samples, 500)])
    from safetensors.torch import save_file
    save_file({"images": xs.float().contiguous()}, a.out)
    print(json.dumps(dict(done=True, iters=it, secs=round(secs, 1), kimg=round(tr.nimg / 1000.0, 3), lod=tr.lod,
                          phases=rows, out=a.out, samples=int(xs.shape[0]))), flush=True)


if __name__ == "__main__":
    main()
