#!/usr/bin/env python3
"""The PyTorch side of make bench's sampling workloads deep128 / deep256 / deep512: one forward of
pytorch-pretrained-BigGAN's biggan-deep-128 / 256 / 512 (its own model.py and configs, random
weights: the released ones are not downloadable here, and the time does not depend on the
values) in eval mode, batch 8 / 8 / 4, truncation 0.4, one-hot classes, under torch.no_grad.
Prints one JSON line as ../shared/bench/torch_reference.py.

    python scripts/dev/bench/torch/biggan_deep_forward.py deep256 --steps 5 --threads 2
"""
import argparse
import json
import resource
import time

import torch
from pytorch_pretrained_biggan import BigGAN
from pytorch_pretrained_biggan.convert_tf_to_pytorch import BigGAN128, BigGAN256, BigGAN512
from pytorch_pretrained_biggan.utils import truncated_noise_sample

parser = argparse.ArgumentParser()
parser.add_argument("workload", choices=["deep128", "deep256", "deep512"])
parser.add_argument("--steps", type=int, default=5)
parser.add_argument("--warmup", type=int, default=2)
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--batch", type=int, default=None, help="default 8, 4 for deep512")
args = parser.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(0)
config = {"deep128": BigGAN128, "deep256": BigGAN256, "deep512": BigGAN512}[args.workload]
args.batch = args.batch or (4 if args.workload == "deep512" else 8)
model = BigGAN(config).eval()
with torch.no_grad():
    model.generator.bn.weight.fill_(1)       # torch.Tensor(n): unset memory otherwise
    model.generator.bn.bias.zero_()
y = torch.zeros(args.batch, 1000)
for i in range(args.batch):
    y[i, (i * 97) % 1000] = 1


def iteration():
    with torch.no_grad():
        model(torch.from_numpy(truncated_noise_sample(args.batch, 128, 0.4)), y, 0.4)


for _ in range(args.warmup):
    iteration()
times = []
for _ in range(args.steps):
    t0 = time.perf_counter()
    iteration()
    times.append(time.perf_counter() - t0)
times.sort()
n = len(times)
median = times[n // 2] if n % 2 else (times[n // 2 - 1] + times[n // 2]) / 2
print(json.dumps({"workload": args.workload, "ms_per_iter": round(median * 1e3, 1), "ms_min": round(times[0] * 1e3, 1),
                  "ms_max": round(times[-1] * 1e3, 1), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "params": sum(p.numel() for p in model.parameters()), "threads": args.threads, "torch": torch.__version__}))
