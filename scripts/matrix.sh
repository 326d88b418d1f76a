#!/usr/bin/env bash
# The MeshAgent SDK version matrix: the compatibility suite against every SDK + CLI version
# listed in pyproject.toml ([tool.localmesh.sdk-matrix]), each in its own virtual environment
# (noxfile.py). Sets up .venv first, like test.sh.
#
#   bash scripts/matrix.sh                      every version
#   bash scripts/matrix.sh --ci                 the oldest and the newest (what CI runs)
#   bash scripts/matrix.sh -s "compat(0.46.4)"  any nox arguments; after --, pytest's
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$LOCALMESH_ROOT"

if [ "${1:-}" = "--ci" ]; then
    shift
    set -- -t ci "$@"
elif [ $# -eq 0 ]; then
    set -- -s compat
fi
exec python -m nox --noxfile "$LOCALMESH_ROOT/noxfile.py" "$@"
