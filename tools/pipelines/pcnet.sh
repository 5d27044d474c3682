#!/usr/bin/env bash
# PCNet end to end: phrases -> mask proposals -> training -> evaluation.
#
#   PHRASE_ARGS="..." PROPOSAL_ARGS="..." \
#       bash tools/pipelines/pcnet.sh CONFIG WORK_DIR [key=value ...]
#
# The phrase file and the proposal folder are the ones the CONFIG names
# (train_dataloader.dataset.phrase_file under data_root, and the
# LoadProposals proposal_dir). Both tools are resumable and skip finished
# work, so a second run only completes what is missing; training is skipped
# when WORK_DIR/last_checkpoint exists.
#   PHRASE_ARGS    extra tools/decompose_phrases.py flags
#                  (default "--backend rule"; e.g. "--backend openai
#                  --base-url http://127.0.0.1:8000/v1 --model Qwen2-7B")
#   PROPOSAL_ARGS  extra tools/generate_proposals.py flags, overriding the
#                  config's proposal_cfg (default: none; e.g. "--backend sam
#                  --sam-checkpoint ... --clip-weights ...")
# The key=value pairs go to every tool as --cfg-options (e.g. data roots).
set -euo pipefail
CONFIG=$1
WORK=$2
shift 2
cd "$(dirname "$0")/../.."
PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python)}
OPTS=()
[ $# -gt 0 ] && OPTS=(--cfg-options "$@")
read -r -a PHRASE_FLAGS <<< "${PHRASE_ARGS:---backend rule}"
read -r -a PROPOSAL_FLAGS <<< "${PROPOSAL_ARGS:-}"

stamp() { echo "== $(date +%H:%M:%S) $*"; }

# Where the config expects the phrases and the proposals.
read -r PHRASES PROPOSALS < <($PY tools/misc/pcnet_paths.py "$CONFIG" "${OPTS[@]}")

stamp "phrases -> $PHRASES"
$PY tools/decompose_phrases.py "$CONFIG" --out "$PHRASES" \
    "${PHRASE_FLAGS[@]}" "${OPTS[@]}"

stamp "mask proposals -> $PROPOSALS"
$PY tools/generate_proposals.py "$CONFIG" --out "$PROPOSALS" \
    "${PROPOSAL_FLAGS[@]}" "${OPTS[@]}"

if [ ! -f "$WORK/last_checkpoint" ]; then
    stamp "training $CONFIG"
    $PY tools/train.py "$CONFIG" --work-dir "$WORK" "${OPTS[@]}"
else
    stamp "training: done ($WORK)"
fi
CKPT=$(cat "$WORK/last_checkpoint")

stamp "evaluation (response maps, and the proposal at the peak)"
$PY tools/test.py "$CONFIG" "$CKPT" --work-dir "$WORK/eval" \
    --out "$WORK/eval/results" "${OPTS[@]}"
