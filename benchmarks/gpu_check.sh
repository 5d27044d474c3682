#!/usr/bin/env bash
# One-command GPU check (README "Performance"); about 6-8 minutes on one
# H100. Prints, with random weights at the paper batch sizes:
#   1. TRIS / PCNet / PPT / MagNet training step: ms, images/s, peak memory
#      in fp32, bf16 (--amp), bf16 + channels-last + TF32 (--fast) and
#      --fast + torch.compile; FLOP/s from counted FLOPs and their share of
#      the measured bf16 matmul ceiling;
#   2. the released TRIS step 1 against ours on the same GPU (fp32 and
#      --fast), when a checkout of fawnliu/TRIS is given;
#   3. evaluation: inference and metric time for 10k expressions;
#   4. the loading time of PCNet's proposals / PPT's SAM embeddings per
#      batch against the measured PCNet step.
#
#   bash benchmarks/gpu_check.sh [/path/to/TRIS-checkout]
# Environment: PYTHON (default: .venv/bin/python if present, else python),
# MODES (default "fp32 bf16 fast"; TRIS also runs TRIS_MODES, default
# "$MODES compile"), STEPS (default 5), EVAL_NUM (default 10000); for a
# smoke test elsewhere: TRIS, PCNET, PPT, MAGNET (configs), BATCH.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
MODES=${MODES:-fp32 bf16 fast}
TRIS_MODES=${TRIS_MODES:-$MODES compile}
STEPS=${STEPS:-5}
EVAL_NUM=${EVAL_NUM:-10000}
BATCH_ARG=${BATCH:+--batch $BATCH}
RELEASED=${1:-}
OUT=$(mktemp -d)
export PYTHONWARNINGS=ignore

TRIS=${TRIS:-configs/tris/tris_clip-r50_1xb48-15e_refcoco-unc-320x320.py}
PCNET=${PCNET:-configs/pcnet/pcnet_clip-r50_1xb48-15e_refcoco-unc-320x320.py}
PPT=${PPT:-configs/ppt/ppt_clip-r50-sam-vit-h_1xb16-40k_refcoco-unc-320x320.py}
MAGNET=${MAGNET:-configs/magnet/magnet_swin-b_4xb8-40e_refcoco-unc-480x480.py}
steps() {  # config, timeout, modes, extra arguments
    local config=$1 limit=$2 modes=$3
    shift 3
    timeout "$limit" $PY benchmarks/model_steps.py "$config" --modes $modes \
        --steps "$STEPS" --flops --ceiling $BATCH_ARG "$@" \
        || echo "($config: stopped, exit $?)"
}

echo "== 1. training steps (paper batch, random weights) =="
$PY - <<'PY'
import torch
print('torch', torch.__version__, '| GPU', torch.cuda.get_device_name()
      if torch.cuda.is_available() else 'none')
PY
steps "$TRIS" 170 "$TRIS_MODES"
steps "$PCNET" 80 "$MODES" --json "$OUT/steps.json"
if [ -f "$PPT" ]; then
    steps "$PPT" 100 "$MODES" --cfg-options model.sam.random_init=True
else
    echo "PPT: $PPT does not exist yet, skipped"
fi
steps "$MAGNET" 80 "$MODES"

echo "== 2. released TRIS step 1 on the same GPU (calibration off) =="
if [ -n "$RELEASED" ]; then
    for mode in fp32 fast; do
        timeout 90 $PY benchmarks/tris_vs_released.py --device cuda \
            --released "$RELEASED" --batch 48 --steps "$STEPS" --warmup 2 \
            --ours-mode $mode | tail -4
    done
else
    echo "no checkout of fawnliu/TRIS given (bash benchmarks/gpu_check.sh PATH), skipped"
fi

echo "== 3. evaluation throughput, 10k expressions =="
timeout 100 $PY benchmarks/eval_throughput.py --config "$TRIS" \
    --num "$EVAL_NUM" --batch 64 --bf16 --channels-last

echo "== 4. heavy inputs against the PCNet step =="
STEP_MS=$($PY - "$OUT/steps.json" <<'PY'
import json, sys
try:
    rows = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    rows = []
pcnet = rows
best = min((r['ms'] for r in pcnet), default=None)
print(best if best else '')
PY
)
timeout 40 $PY benchmarks/heavy_inputs.py --batch 48 --workers 4 \
    ${STEP_MS:+--step-ms $STEP_MS}

echo "== 5. tokenising in the forward vs in the data workers =="
timeout 30 $PY benchmarks/tokenization.py --batch 48 --negatives 3
rm -rf "$OUT"
