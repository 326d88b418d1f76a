#!/usr/bin/env bash
# Run the localmesh benchmark: bash bench/run.sh [--quick] [--update-docs] [...]
# Uses the repo's .venv if there is one, else $PYTHON, else the python on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -x .venv/bin/python ]]; then
    python=.venv/bin/python
elif [[ -n "${PYTHON:-}" ]]; then
    python=$PYTHON
else
    python=$(command -v python3 || command -v python)
fi
exec "$python" -m bench "$@"
