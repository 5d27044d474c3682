#!/usr/bin/env bash
# The main job on the built-in toy data, from a fresh clone:
#   1. set up .venv (tools/setup_env.sh)
#   2. generate the toy refer dataset (data/toy_refer)
#   3. evaluate the centre-prior baseline (the floor)
#   4. train TRIS step 1 (tiny CLIP from scratch, 3000 iterations, CPU)
#   5. evaluate it on val / testA / testB with every metric, with overlays
# About 15 minutes on 2 CPU cores. A finished training run is reused.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_env.sh
PY=.venv/bin/python
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
WORK=${WORK_DIR:-work_dirs/toy}
TRIS=configs/tris/tris_clip-tiny_1xb32-3k_toyrefer-128x128.py

if [ ! -f data/toy_refer/toyref/refs\(synth\).p ]; then
    $PY tools/dataset_converters/make_toy_refer.py --out data/toy_refer
fi

echo "== centre-prior baseline (the floor every method must beat) =="
$PY tools/test.py configs/baselines/centerprior_gaussian_1xb32-eval_toyrefer-128x128.py \
    --work-dir "$WORK/centerprior" --out "$WORK/centerprior/results"

echo "== TRIS step 1: training the tiny config =="
if [ ! -f "$WORK/tris/iter_3000.pth" ]; then
    $PY tools/train.py "$TRIS" --work-dir "$WORK/tris"
fi

echo "== TRIS step 1: evaluation (overlays in $WORK/tris/vis) =="
$PY tools/test.py "$TRIS" "$WORK/tris/iter_3000.pth" \
    --work-dir "$WORK/tris" --out "$WORK/tris/results" \
    --show-dir "$WORK/tris/vis" \
    --cfg-options default_hooks.visualization.interval=10
