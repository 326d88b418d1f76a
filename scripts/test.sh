#!/usr/bin/env bash
# Set up (first run) and run the whole localmesh test suite: lint, then pytest.
# With CI=true, any skipped test fails the run: compatibility tests must really run.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$LOCALMESH_ROOT"

ruff check .
python -m pytest "$@"
