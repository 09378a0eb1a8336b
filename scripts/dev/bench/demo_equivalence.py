"""The long-horizon check of the main job's recipe: PyTorch takes the path luagan took.

scripts/dev/bench/demo_equivalence.lua trains the demo recipe in float64 and writes the initial
weights, every step's inputs (reals, labels, noise) and the state every few iterations. This
script trains the PyTorch twin (scripts/dev/bench/torch/torch_reference.py's BigG/BigD, as
fmnist_demo_torch.py trains them) from the same weights on the same inputs, in float64, and
compares every parameter, buffer and EMA entry at each saved iteration. Only summation order
differs between the two, so they must agree to 1e-6 relative (per tensor: max |a - b| over
max |b|) through the whole run; the first iteration where they do not points at a bug.

Usage: .venv-torch/bin/python scripts/dev/bench/demo_equivalence.py runs/equivalence [--tol 1e-6]
"""
import argparse, copy, json, os, re, sys
import torch, torch.nn.functional as F
from safetensors.torch import load_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch"))
import torch_reference as R  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("dir")
ap.add_argument("--tol", type=float, default=1e-6)
a = ap.parse_args()
run = json.load(open(os.path.join(a.dir, "run.json")))
torch.set_default_dtype(torch.float64)


def to_torch(name):
    """luagan's state names -> torch_reference's (ccbn buffers, output layers, D's block lists)."""
    name = re.sub(r"^D\.blocks\.(\d+)\.0\.", r"D.blocks.\1.", name)
    name = name.replace("output_bn.", "out_bn.").replace("output_conv.", "out_conv.")
    if ".bn1." in name or ".bn2." in name:
        name = name.replace("running_mean", "stored_mean").replace("running_var", "stored_var")
    return name


def load_into(model, prefix, state):
    mine = {to_torch(k)[len(prefix) + 1:]: v for k, v in state.items() if k.startswith(prefix + ".")}
    missing = set(model.state_dict()) - set(mine)
    assert not missing, f"{prefix}: no luagan entry for {sorted(missing)[:5]}"
    model.load_state_dict({k: v.to(model.state_dict()[k].dtype) for k, v in mine.items()})


G, D = R.BigG(run["ch"], out_ch=1, attn_res=0).double(), R.BigD(run["ch"], in_ch=1).double()
init = load_file(os.path.join(a.dir, "state-0000.safetensors"))
load_into(G, "G", init)
load_into(D, "D", init)
Gema = copy.deepcopy(G)
oG = torch.optim.Adam(G.parameters(), run["lrG"], betas=(0.0, 0.999), eps=1e-8)
oD = torch.optim.Adam(D.parameters(), run["lrD"], betas=(0.0, 0.999), eps=1e-8)
B = run["batchSize"]


def compare(it, expected):
    """The largest relative difference over every entry, and its name."""
    worst, where = 0.0, ""
    for prefix, model in (("G", G), ("D", D), ("Gema", Gema)):
        sd = model.state_dict()
        for k, v in expected.items():
            if not k.startswith(prefix + "."):
                continue
            mine = sd[to_torch(k)[len(prefix) + 1:]]
            if not mine.dtype.is_floating_point:
                assert int(mine) == int(v), f"{k}: {int(mine)} vs {int(v)}"
                continue
            scale = float(v.abs().max())
            rel = float((mine - v).abs().max()) / max(scale, 1e-300)
            if rel > worst:
                worst, where = rel, k
    return worst, where


rows, first_bad, overall = [], None, (0.0, "", 0)
for it in range(1, run["iters"] + 1):
    x = load_file(os.path.join(a.dir, f"inputs-{it:04d}.safetensors"))
    for k in range(1, run.get("numDSteps", 1) + 1):  # BigGAN-PyTorch: fresh reals, noise and labels per D step
        real, ry = x[f"real{k}"], x[f"realY{k}"].long() - 1
        z, fy = x[f"z{k}"], x[f"fakeY{k}"].long() - 1
        with torch.no_grad():
            fake = G(z, G.shared(fy))
        out = D(torch.cat([fake, real]), torch.cat([fy, ry]))
        ld = F.relu(1 - out[B:]).mean() + F.relu(1 + out[:B]).mean()
        oD.zero_grad(); ld.backward(); oD.step()
    z2, fy2 = x["zG"], x["fakeYG"].long() - 1
    lg = -D(G(z2, G.shared(fy2)), fy2).mean()
    oG.zero_grad(); lg.backward(); R.ortho_(G, 1e-4, [G.shared.weight]); oG.step()
    with torch.no_grad():
        dec = 0.0 if it < run["emaStart"] else run["emaDecay"]
        for pe, p in zip(Gema.state_dict().values(), G.state_dict().values()):
            if pe.dtype.is_floating_point:
                pe.mul_(dec).add_(p, alpha=1 - dec)
            else:
                pe.copy_(p)
    if it % run["every"] == 0:
        expected = load_file(os.path.join(a.dir, f"state-{it:04d}.safetensors"))
        worst, where = compare(it, expected)
        dl = abs(ld.item() - expected["lossD"].item()) / max(abs(expected["lossD"].item()), 1e-300)
        rows.append(dict(iter=it, maxRel=worst, worst=where, lossD=ld.item(), lossDRel=dl))
        print(json.dumps(rows[-1]), flush=True)
        if worst > overall[0]:
            overall = (worst, where, it)
        if worst > a.tol and first_bad is None:
            first_bad = it
verdict = dict(iters=run["iters"], maxRel=overall[0], worst=overall[1], atIter=overall[2], tol=a.tol,
               firstAboveTol=first_bad, agree=first_bad is None)
print(json.dumps(verdict))
json.dump(dict(rows=rows, verdict=verdict), open(os.path.join(a.dir, "comparison.json"), "w"), indent=1)
sys.exit(0 if first_bad is None else 1)
