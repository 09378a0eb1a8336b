#!/usr/bin/env bash
# PGGAN's main job's acceptance matrix (issue 28): `make demo-pggan` (scripts/configs/demo_pggan.lua,
# a 15-minute budget, then the paper's evaluation: 16,384 samples against the training split) for
# each GEMM set-up and seed, and the
# PyTorch twin of the official recipe (scripts/dev/bench/torch/pggan_twin.py) for the same budget
# and seed on the same machine, its Gs samples scored by the same evaluation. One thing at a time
# (the budget is wall-clock: nothing else may share the cores). Per seed: each set-up, then the twin.
# Writes runs/pggan-matrix/<setup>-s<seed>/ (+ .txt: the run's output and its evaluation) and
# twin-s<seed>.{safetensors,txt}. Takes about 2 h 20 min (9 runs of 15 minutes).
#
#   scripts/dev/bench/pggan_matrix.sh [set-ups (default: "native haswell")] [seeds (default: "1 2 3")]
#   scripts/dev/bench/pggan_matrix.sh eval       (evaluate the runs and twins already there again, appending
#                                                 to their logs, then rebuild the table: the last evaluation wins)
#   scripts/dev/bench/pggan_matrix.sh table      (only rebuild runs/pggan-matrix/table.md from the logs)
#
# Set-ups (what runs every float32 GEMM, so the two differ in the kernel that does most of the work):
#   native   the core OpenBLAS picks for this CPU (even where the environment forces one), with
#            luagan's defaults (its own packed GEMM where the kernels run at AVX-512)
#   haswell  OpenBLAS's Haswell core for every GEMM (OPENBLAS_CORETYPE=Haswell LG_OWN_GEMM=0)
set -euo pipefail
cd "$(dirname "$0")/../../.."
setups=${1:-"native haswell"}
seeds=${2:-"1 2 3"}
minutes=${MINUTES:-15}
luagan=${LUAGAN:-.build/release/luagan}
python=${TORCH_PYTHON:-../.venv-torch/bin/python}
out=runs/pggan-matrix
mkdir -p "$out"
summary='FID \(domain\)|KL\(hist|SWD|MS-SSIM|classes covered'   # the evaluation's lines worth echoing per run
samples=16384 split=train   # PGGAN's SWD protocol (config.py: num_images=16384, real images from the training set)
# evaluate <run folder or twin samples file> <log>: one evaluator for every run and twin (this
# shell's environment, whatever set-up trained the run)
evaluate() {
  case $1 in
    *.safetensors) "$luagan" scripts/dev/bench/score_samples.lua "$1" "$split" ;;
    *) "$luagan" scripts/eval.lua --ckpt="$1" --n="$samples" --split="$split" ;;
  esac >> "$2" 2>&1 || echo "(evaluating $1 failed: see $2)"
  { grep -E "$summary" "$2" || true; } | tail -5
}
case ${1:-} in
  table) seeds="" ;;
  eval)
    seeds=""
    for log in "$out"/*-s*.txt; do
      [ -e "$log" ] || continue   # no logs yet
      run=${log%.txt}; [ -d "$run" ] || run=$run.safetensors
      echo "== $(basename "$run"): evaluated again, $(date -u +%FT%TZ)" >> "$log"
      evaluate "$run" "$log"
    done ;;
esac
for seed in $seeds; do
  for setup in $setups; do
    case $setup in
      native) env=(-u OPENBLAS_CORETYPE) ;;
      haswell) env=(OPENBLAS_CORETYPE=Haswell LG_OWN_GEMM=0) ;;
      *) echo "unknown set-up $setup (native, haswell)" >&2; exit 2 ;;
    esac
    dir="$out/$setup-s$seed"
    rm -rf "$dir"
    {
      echo "== $setup seed $seed, $(date -u +%FT%TZ)"
      env "${env[@]}" "$luagan" --version
      env "${env[@]}" "$luagan" scripts/pggan.lua --config=scripts/configs/demo_pggan.lua --minutes="$minutes" \
        --seed="$seed" --out="$dir"
      env "${env[@]}" "$luagan" scripts/sample.lua --ckpt="$dir" --truncations='{0}' --n=0
    } > "$dir.txt" 2>&1 || echo "($setup seed $seed failed: see $dir.txt)"
    evaluate "$dir" "$dir.txt"
  done
  if [ -x "$python" ]; then
    echo "== twin seed $seed, $(date -u +%FT%TZ)" > "$out/twin-s$seed.txt"
    rm -f "$out/twin-s$seed.safetensors"   # a failed twin must not be scored on an earlier run's samples
    if FMNIST_ROOT=${FMNIST_ROOT:-/usr/share/datasets/fashion-mnist} "$python" scripts/dev/bench/torch/pggan_twin.py \
      "$out/twin-s$seed.safetensors" --minutes "$minutes" --seed "$seed" --threads 2 --samples "$samples" \
      >> "$out/twin-s$seed.txt" 2>&1; then
      evaluate "$out/twin-s$seed.safetensors" "$out/twin-s$seed.txt"
    else
      echo "(twin seed $seed failed: see $out/twin-s$seed.txt)"
    fi
  fi
done

compgen -G "$out/*-s*.txt" > /dev/null || { echo "no runs in $out yet"; exit 0; }
# The table, one row per log: iterations, kimg per level (each level's fade-in included), SWD x1e3
# at 32 and 16 px and their average, MS-SSIM, domain FID, IS, classes covered and KL(hist || uniform).
{
  echo "| run | iterations | images 4 / 8 / 16 / 32 px (kimg) | SWD x1e3 32 px, 16 px, avg | MS-SSIM | domain FID | IS | classes, KL |"
  echo "|---|---|---|---|---|---|---|---|"
  awk 'FNR == 1 { if (name) row(); name = FILENAME; sub(/.*\//, "", name); sub(/\.txt$/, "", name)
           iters = ""; split("0 0 0 0", kimg); swd32 = swd16 = swd = ms = fid = is = cls = kl = "-" }
/ iterations in / { iters = $1 }
/"done": true/ { match($0, /"iters": [0-9]+/); iters = substr($0, RSTART + 9, RLENGTH - 9) }
/^(fade )?(4|8|16|32)x(4|8|16|32) +[0-9]+ +[0-9]+ +[0-9.]+ +[0-9.]+/ {
  lvl = ($1 == "fade") ? $2 : $1; off = ($1 == "fade") ? 1 : 0; k = $(4 + off)
  sub(/x.*/, "", lvl); idx = (lvl == 4) ? 1 : (lvl == 8) ? 2 : (lvl == 16) ? 3 : 4; kimg[idx] += k }
/FID \(domain\)/ { fid = $3 }
/IS \(domain\)/ { is = $3 }
/classes covered/ { cls = $3 }
/KL\(hist/ { kl = $4 }
/SWD x1e3 \(avg\)/ { swd = $4; swd32 = $6; sub(/,/, "", swd32); swd16 = $8 }
/^  MS-SSIM/ { ms = $2 }
function row() {
  printf "| %s | %s | %.0f / %.0f / %.0f / %.0f | %s, %s, %s | %s | %s | %s | %s, %s |\n",
    name, iters, kimg[1], kimg[2], kimg[3], kimg[4], swd32, swd16, swd, ms, fid, is, cls, kl }
END { if (name) row() }
' "$out"/*-s*.txt
} > "$out/table.md"
cat "$out/table.md"
