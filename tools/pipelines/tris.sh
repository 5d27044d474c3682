#!/usr/bin/env bash
# TRIS end to end: step 1 -> pseudo labels -> step 2 -> evaluation.
#
#   bash tools/pipelines/tris.sh STEP1_CONFIG STEP2_CONFIG WORK_DIR [key=value ...]
#
# Each stage is skipped when its output exists (delete it to redo a stage):
#   WORK_DIR/step1/last_checkpoint   step-1 training
#   WORK_DIR/pseudo_labels/index.json   pseudo labels (resumable by itself)
#   WORK_DIR/step2/last_checkpoint   step-2 training on the pseudo labels
# The key=value pairs go to every tool as --cfg-options (e.g. data roots).
# PYTHON selects the interpreter (default: .venv/bin/python if present).
set -euo pipefail
STEP1=$1
STEP2=$2
WORK=$3
shift 3
cd "$(dirname "$0")/../.."
PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python)}
OPTS=()
[ $# -gt 0 ] && OPTS=(--cfg-options "$@")

stamp() { echo "== $(date +%H:%M:%S) $*"; }

if [ ! -f "$WORK/step1/last_checkpoint" ]; then
    stamp "step 1: training $STEP1"
    $PY tools/train.py "$STEP1" --work-dir "$WORK/step1" "${OPTS[@]}"
else
    stamp "step 1: done ($WORK/step1)"
fi
STEP1_CKPT=$(cat "$WORK/step1/last_checkpoint")

stamp "step 1: evaluation (the response map thresholded directly)"
$PY tools/test.py "$STEP1" "$STEP1_CKPT" --work-dir "$WORK/step1_eval" "${OPTS[@]}"

if [ ! -f "$WORK/pseudo_labels/index.json" ]; then
    stamp "pseudo labels -> $WORK/pseudo_labels"
    $PY tools/generate_pseudo_labels.py "$STEP1" "$STEP1_CKPT" \
        --out "$WORK/pseudo_labels" "${OPTS[@]}"
else
    stamp "pseudo labels: done ($WORK/pseudo_labels)"
fi

if [ ! -f "$WORK/step2/last_checkpoint" ]; then
    stamp "step 2: training $STEP2 on the pseudo labels"
    $PY tools/train.py "$STEP2" --work-dir "$WORK/step2" --cfg-options "$@" \
        train_dataloader.dataset.pseudo_label_dir="$WORK/pseudo_labels"
else
    stamp "step 2: done ($WORK/step2)"
fi
STEP2_CKPT=$(cat "$WORK/step2/last_checkpoint")

stamp "step 2: evaluation"
$PY tools/test.py "$STEP2" "$STEP2_CKPT" --work-dir "$WORK/step2_eval" "${OPTS[@]}"
