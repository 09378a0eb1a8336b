#!/usr/bin/env bash
# make bench's data-parallel line: biggan32 (ch 64, global batch 50, 25 per rank) as 1 process
# x 2 threads against 2 MPI ranks x 1 thread on the same cores, A B C A B C, with the time rank 0
# spends in collectives (gradient all-reduces, including waiting for the slower rank); B averages
# gradients while backward runs (dist.GradientAverager), C after it (dist.averageGradients).
#   scripts/dev/bench/ranks.sh [workload (biggan32)] [rounds (2)] [steps (5)]
set -euo pipefail
cd "$(dirname "$0")/../../.."
workload=${1:-biggan32}; rounds=${2:-2}; steps=${3:-5}
luagan=.build/release/luagan
command -v mpirun > /dev/null || { echo "ranks.sh: mpirun not found (scripts/setup.sh installs openmpi-bin)"; exit 0; }
field() { sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p" | head -1; }
for r in $(seq "$rounds"); do
  one=$($luagan scripts/dev/bench/gan_workloads.lua "$workload" --steps="$steps" --threads=2 | grep '^{')
  two=$(mpirun --oversubscribe --allow-run-as-root -n 2 $luagan scripts/dev/bench/gan_workloads.lua "$workload" --steps="$steps" --threads=1 \
    | grep '^{' | head -1)
  after=$(mpirun --oversubscribe --allow-run-as-root -n 2 $luagan scripts/dev/bench/gan_workloads.lua "$workload" --steps="$steps" --threads=1 \
    --overlap=false | grep '^{' | head -1)
  a=$(echo "$one" | field ms_per_iter); b=$(echo "$two" | field ms_per_iter); comm=$(echo "$two" | field comm_ms_per_iter)
  c=$(echo "$after" | field ms_per_iter); commC=$(echo "$after" | field comm_ms_per_iter)
  echo "$workload round $r: 1 process x 2 threads $a ms/iter; 2 ranks x 1 thread $b ms/iter (of which $comm ms in all-reduces);" \
    "ratio $(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", b / a }');" \
    "2 ranks averaging after backward $c ms/iter ($commC ms in all-reduces)"
done
