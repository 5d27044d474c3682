#!/usr/bin/env bash
# The main job on the built-in toy data, from a fresh clone:
# set up .venv, generate the toy refer dataset, evaluate the centre-prior
# baseline through tools/test.py (every metric, every split).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_env.sh
PY=.venv/bin/python
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
WORK=${WORK_DIR:-work_dirs/toy}

if [ ! -f data/toy_refer/toyref/refs\(synth\).p ]; then
    $PY tools/dataset_converters/make_toy_refer.py --out data/toy_refer
fi

echo "== centre-prior baseline (the floor every method must beat) =="
$PY tools/test.py configs/baselines/centerprior_gaussian_1xb32-eval_toyrefer-128x128.py \
    --work-dir "$WORK/centerprior" --out "$WORK/centerprior/results"
