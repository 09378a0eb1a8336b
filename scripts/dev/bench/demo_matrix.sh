#!/usr/bin/env bash
# The main job's acceptance matrix: `make demo`'s training (scripts/configs/demo.lua, a 15-minute
# budget) for each BLAS core and seed, then the PyTorch twin (scripts/dev/bench/torch/
# fmnist_demo_torch.py) for the same budget and each seed on the same machine, scored by the same classifier.
# Runs one thing at a time (the budget is wall-clock: nothing else may share the cores).
# Writes runs/matrix/<core>-s<seed>/ and runs/matrix/table.md. Takes about 2 h 20 min (9 runs of 15 minutes).
#
#   scripts/dev/bench/demo_matrix.sh [cores (default: "native Haswell")] [seeds (default: "1 2 3")]
set -euo pipefail
cd "$(dirname "$0")/../../.."
cores=${1:-"native Haswell"}
seeds=${2:-"1 2 3"}
minutes=${MINUTES:-15}
luagan=.build/release/luagan
python=${TORCH_PYTHON:-../.venv-torch/bin/python}
[ -x "$python" ] || python=/work/.venv-torch/bin/python
out=runs/matrix
mkdir -p "$out"
table="$out/table.md"
echo "| core | seed | iterations | class accuracy | domain FID | IS | collapses |" > "$table"
echo "|---|---|---|---|---|---|---|" >> "$table"
for core in $cores; do
  for seed in $seeds; do
    dir="$out/$core-s$seed"
    rm -rf "$dir"
    # native: the core OpenBLAS picks for this CPU, even where the environment forces one
    env=(-u OPENBLAS_CORETYPE)
    [ "$core" != native ] && env=(OPENBLAS_CORETYPE="$core")
    echo "== $core seed $seed: $(env "${env[@]}" $luagan --version | grep '^BLAS')"
    env "${env[@]}" $luagan scripts/biggan.lua --config=scripts/configs/demo.lua --minutes="$minutes" --seed="$seed" \
      --out="$dir" --quiet > "$dir.txt" 2>&1 || true
    $luagan -e "
      local rows, last, collapses = log.read('$dir/log.jsonl'), nil, 0
      for _, r in ipairs(rows) do
        if r.accuracy then last = r end
        if r.collapse then collapses = collapses + 1 end
      end
      print(('| $core | $seed | %d | %.1f%% | %.2f | %.2f | %d |'):format(last.iter, 100 * last.accuracy, last.fid, last.is, collapses))
    " >> "$table"
    tail -1 "$table"
  done
done
# The twin, once per seed (its BLAS is PyTorch's own, so the core does not apply), same budget.
if [ -x "$python" ]; then
  echo "" >> "$table"
  echo "| PyTorch twin, seed | iterations | class accuracy | domain FID | IS |" >> "$table"
  echo "|---|---|---|---|---|" >> "$table"
  for seed in $seeds; do
    echo "== twin seed $seed"
    FMNIST_ROOT=${FMNIST_ROOT:-/usr/share/datasets/fashion-mnist} "$python" scripts/dev/bench/torch/fmnist_demo_torch.py \
      "$out/twin-s$seed.safetensors" --minutes "$minutes" --seed "$seed" > "$out/twin-s$seed.txt"
    iters=$(grep -o '"iters": [0-9]*' "$out/twin-s$seed.txt" | grep -o '[0-9]*$')
    $luagan scripts/dev/bench/score_samples.lua "$out/twin-s$seed.safetensors" |
      sed -E "s/.*domain FID ([0-9.]+), IS ([0-9.]+), class accuracy ([0-9.]+%).*/| $seed | $iters | \3 | \1 | \2 |/" >> "$table"
    tail -1 "$table"
  done
fi
cat "$table"
