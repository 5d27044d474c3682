#!/usr/bin/env bash
# Set up .venv if needed, then run the test suite. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_env.sh
exec .venv/bin/python -m pytest tests -q "$@"
