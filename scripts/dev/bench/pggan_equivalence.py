"""PGGAN's float64 check: the official recipe's twin takes the path luagan's recipe took.

scripts/dev/bench/pggan_equivalence.lua trains luagan's PGGAN recipe (scripts/lib/recipes/pggan.lua)
in float64 across a fade and level changes and writes the initial weights, every iteration's
inputs (full-resolution reals, the D and G steps' latents, the penalty's mixing factors, lod)
and the state every few iterations. This script loads the same weights into the PyTorch twin of
tkarras/progressive_growing_of_gans (scripts/dev/bench/torch/pggan_twin.py) in float64 and replays
every iteration on the same inputs, twice:
- full_res=True: the official computation (G and D at full resolution, every level blended by
  lerp_clip on lod, the penalty's norm w.r.t. the full-resolution image). Agreement proves
  luagan's native-resolution computation is the same function, trained the same way.
- full_res=False: the twin's fast mode (luagan's native resolution), used for the side-by-side.
At each saved state every G, D and Gs tensor and every Adam moment must agree to --tol relative
(per tensor: max |a - b| / max |b|); the twin's own kimg schedule must give the recorded lods.

Usage:
  .build/release/luagan scripts/dev/bench/pggan_equivalence.lua --iters=200 --out=runs/pggan-equivalence
  /work/.venv-torch/bin/python scripts/dev/bench/pggan_equivalence.py runs/pggan-equivalence [--tol 1e-6]
"""
import argparse
import json
import math
import os
import sys

import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch"))
import pggan_twin as T  # noqa: E402


def load_into(model, prefix, state):
    """luagan's names are the twin's (dense, dense_bias, conv4, blocks.<l-2>.<0|1>, toRGB.<l-1>,
    fromRGB.<l-1>, dense0, dense1), with the same layouts: conv (out, in, kh, kw), Linear (out, in),
    G's dense output read as (N, nf1, 4, 4)."""
    mine = {k[len(prefix) + 1:]: v for k, v in state.items() if k.startswith(prefix + ".")}
    sd = model.state_dict()
    missing, extra = set(sd) - set(mine), set(mine) - set(sd)
    assert not missing and not extra, f"{prefix}: names differ: missing {sorted(missing)}, unexpected {sorted(extra)}"
    for k, v in mine.items():
        assert sd[k].shape == v.shape, f"{prefix}.{k}: {tuple(sd[k].shape)} vs luagan's {tuple(v.shape)}"
    model.load_state_dict({k: v.to(torch.float64) for k, v in mine.items()})


def replay(a, run, full_res):
    cfg = run["config"]
    net = dict(resolution=cfg["resolution"], channels=1, latent=cfg["latent"], fmap_base=cfg["fmapBase"],
               fmap_max=cfg["fmapMax"], mbstd_group=cfg["mbstdGroup"], use_wscale=True, use_pixelnorm=True)
    G, D, Gs = (m.double() for m in T.build(**net))
    init = load_file(os.path.join(a.dir, "state-0000.safetensors"))
    load_into(G, "G", init)
    load_into(D, "D", init)
    load_into(Gs, "Gs", init)
    if a.frozen_dense_bias:
        G.dense_bias.requires_grad_(False)   # emulates luagan's float64 run, see the report below
    tr = T.Trainer(G, D, Gs, lr=cfg["lr"], gp_lambda=cfg["gpLambda"], gp_target=cfg["gpTarget"], drift=cfg["drift"],
                   gs_beta=cfg["GsBeta"], full_res=full_res)
    period, B = cfg["schedulePeriod"], cfg["batchSize"]
    params = {"optG": dict(G.named_parameters()), "optD": dict(D.named_parameters())}
    opts = {"optG": tr.optG, "optD": tr.optD}

    def compare(expected):
        worst, where, per = 0.0, "", []
        for k, v in expected.items():
            if k in ("lossD", "lossG"):
                continue
            head, rest = k.split(".", 1)
            if head in ("G", "D", "Gs"):
                mine = dict(G=G, D=D, Gs=Gs)[head].state_dict()[rest]
            else:   # optG.<param>.exp_avg(_sq): TF's m and v of that parameter
                pname, moment = rest.rsplit(".", 1)
                p, o = params[head][pname], opts[head]
                store = o.m if moment == "exp_avg" else o.v
                mine = store.get(p, torch.zeros_like(p))
            scale = float(v.abs().max())
            diff = float((mine - v).abs().max())
            rel = diff / scale if scale > 0 else (0.0 if diff == 0 else math.inf)
            per.append((rel, k, diff))
            if rel > worst:
                worst, where = rel, k
        # moments luagan does not have (parameters without a gradient since the last reset)
        # must be zero on the twin's side too
        for head, o in opts.items():
            for pname, p in params[head].items():
                if f"{head}.{pname}.exp_avg" not in expected and p in o.m:
                    if float(o.m[p].abs().max()) > 0 or float(o.v[p].abs().max()) > 0:
                        per.append((math.inf, f"{head}.{pname} (moments where luagan has none)", math.inf))
                        worst, where = math.inf, per[-1][1]
        return worst, where, per

    rows, first_bad, overall, lod_dev = [], None, (0.0, "", 0), 0.0
    for it in range(1, run["iters"] + 1):
        x = load_file(os.path.join(a.dir, f"inputs-{it:04d}.safetensors"))
        lod = float(x["lod"][0])
        if (it - 1) % period == 0:
            # the twin's own schedule (train.py TrainingSchedule on the reals shown so far)
            mine = T.kimg_lod(tr.nimg / 1000.0, cfg["resolution"], cfg["trainKimg"], cfg["transKimg"])
            lod_dev = max(lod_dev, abs(mine - lod))
            tr.advance(lod)
        assert lod == tr.lod, f"iteration {it}: recorded lod {lod} changed within a schedule period ({tr.lod})"
        ld = tr.d_step(x["real"], x["zD"], x["u"])
        lg = tr.g_step(x["zG"])
        if it % run["every"] == 0:
            expected = load_file(os.path.join(a.dir, f"state-{it:04d}.safetensors"))
            worst, where, per = compare(expected)
            dl = abs(ld.item() - expected["lossD"].item()) / max(abs(expected["lossD"].item()), 1e-300)
            gl = abs(lg.item() - expected["lossG"].item()) / max(abs(expected["lossG"].item()), 1e-300)
            rows.append(dict(iter=it, lod=lod, maxRel=worst, worst=where, lossDRel=dl, lossGRel=gl))
            if a.verbose:
                print(json.dumps(rows[-1]), flush=True)
            if worst > overall[0]:
                overall = (worst, where, it)
            if worst > a.tol and first_bad is None:
                bad = sorted(((r, k, d) for r, k, d in per if r > a.tol), reverse=True)
                # a parameter luagan left exactly where it started while the twin moved it is one
                # luagan does not train: name it, it is the likeliest first cause
                frozen = [k for k, v in expected.items() if k.split(".")[0] in ("G", "D") and k in init
                          and torch.equal(v, init[k]) and not torch.equal(
                              dict(G=G, D=D)[k.split(".")[0]].state_dict()[k.split(".", 1)[1]], init[k])]
                first_bad = dict(iter=it, lod=lod, tensors=[dict(name=k, rel=r, absDiff=d) for r, k, d in bad[:8]],
                                 count=len(bad), untrainedByLuagan=frozen)
    return dict(fullRes=full_res, iters=run["iters"], maxRel=overall[0], worst=overall[1], atIter=overall[2], tol=a.tol,
                scheduleLodMaxDiff=lod_dev, firstAboveTol=first_bad,
                agree=first_bad is None and lod_dev <= 1e-12), rows


def main():
    ap = argparse.ArgumentParser(description="PGGAN: luagan's float64 run against the official recipe's twin")
    ap.add_argument("dir")
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--verbose", action="store_true", help="one line per saved state")
    ap.add_argument("--frozen-dense-bias", action="store_true",
                    help="hold G's 4x4 dense bias at zero in the twin too (a diagnosis: what luagan's float64 run does)")
    ap.add_argument("--threads", type=int, default=1,
                    help="1: the nets are tiny, and 2 OpenMP threads slow down tenfold when the cores are shared")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_default_dtype(torch.float64)
    run = json.load(open(os.path.join(a.dir, "run.json")))
    lods = run["lods"]
    print(json.dumps(dict(iters=run["iters"], lodFrom=lods[0], lodTo=lods[-1],
                          levelChanges=sum(1 for i in range(1, len(lods)) if math.floor(lods[i]) != math.floor(lods[i - 1])
                                           or math.ceil(lods[i]) != math.ceil(lods[i - 1])),
                          frozenDenseBias=a.frozen_dense_bias)), flush=True)
    verdicts, allrows = [], {}
    for full_res in (True, False):
        verdict, rows = replay(a, run, full_res)
        verdicts.append(verdict)
        allrows["fullRes" if full_res else "native"] = rows
        print(json.dumps(verdict), flush=True)
        fb = verdict["firstAboveTol"]
        print(f"full_res={full_res}: largest relative difference {verdict['maxRel']:.3g} ({verdict['worst']}, iteration "
              f"{verdict['atIter']}); schedule lod max diff {verdict['scheduleLodMaxDiff']:.3g}; "
              + ("all within tol" if fb is None else
                 f"first above tol at iteration {fb['iter']} (lod {fb['lod']}): {fb['count']} tensors, worst "
                 f"{fb['tensors'][0]['name']}" + (f"; luagan never trained {fb['untrainedByLuagan']}" if fb['untrainedByLuagan'] else "")),
              flush=True)
    name = "comparison-frozen-bias.json" if a.frozen_dense_bias else "comparison.json"
    json.dump(dict(verdicts=verdicts, rows=allrows), open(os.path.join(a.dir, name), "w"), indent=1)
    ok = all(v["agree"] for v in verdicts)
    print("agree" if ok else "DISAGREE", flush=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
