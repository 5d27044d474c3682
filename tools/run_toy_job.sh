#!/usr/bin/env bash
# The main job on the built-in toy data, from a fresh clone: the toy
# benchmark (tools/toy_benchmark.py).
#   1. set up .venv (tools/setup_env.sh)
#   2. generate the toy referring data and the pretraining corpora (data/)
#   3. pretrain the tiny CLIP and tiny SAM stand-ins (cached in
#      data/toy_world/; a second run reuses them)
#   4. train and evaluate the methods on val / testA / testB
#   5. write work_dirs/toy/results.md (table) and results.png (chart)
# Every finished step is reused. Arguments go to tools/toy_benchmark.py:
#   bash tools/run_toy_job.sh --full     # the longer table with ablations
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_env.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
.venv/bin/python tools/toy_benchmark.py "$@"
