#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install
# mmwris with the tested stack. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${MMWRIS_VENV:-.venv}
BASE_PYTHON=${BASE_PYTHON:-python3}
STAMP="$VENV/.mmwris-installed"
REQ_HASH=$(cat requirements/*.txt setup.py | sha1sum | cut -d' ' -f1)

if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating $VENV"
    "$BASE_PYTHON" -m venv "$VENV"
fi
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$REQ_HASH" ] \
        && "$VENV/bin/python" -c "import mmwris" 2>/dev/null; then
    echo "[setup] $VENV is up to date"
    exit 0
fi
echo "[setup] installing torch, the OneDL OpenMMLab stack and mmwris into $VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -r requirements/torch.txt
"$VENV/bin/python" -m pip install -q -r requirements/mmstack.txt \
    -r requirements/runtime.txt -r requirements/tests.txt
"$VENV/bin/python" -m pip install -q --no-deps -e .
"$VENV/bin/python" -c "import mmwris; print('[setup] mmwris', mmwris.__version__, 'ready')"
echo "$REQ_HASH" > "$STAMP"
