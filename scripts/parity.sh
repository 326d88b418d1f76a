#!/usr/bin/env bash
# The parity kit: the compatibility suite against a REAL MeshAgent room instead of localmesh,
# to check localmesh against the service. Needs the MeshAgent variables of a real project:
#   MESHAGENT_API_KEY   a project API key (ma-...)              required
#   MESHAGENT_API_URL   when the project is not on https://api.meshagent.com
# Without them every test is skipped, saying so; nothing runs against anything else. Tests that
# need localmesh itself (faults, the scripted LLM, server state) are left out and listed.
# Rooms get names starting with localmesh-parity-<run id>-, and keep what the tests wrote.
#
#   bash scripts/parity.sh                  with the SDK of .venv (the test extra's, 0.56.0)
#   bash scripts/parity.sh --sdk 0.42.2     with another SDK version of the matrix (its nox session)
#   bash scripts/parity.sh -k queues        further arguments go to pytest
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$LOCALMESH_ROOT"

export LOCALMESH_TARGET=real
if [ "${1:-}" = "--sdk" ]; then
    version="${2:?--sdk needs a version, e.g. --sdk 0.42.2}"
    shift 2
    exec python -m nox --noxfile "$LOCALMESH_ROOT/noxfile.py" -s "compat($version)" -- "$@"
fi
exec python -m pytest -m compat tests/compat -rs "$@"
