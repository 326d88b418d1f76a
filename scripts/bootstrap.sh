#!/usr/bin/env bash
# Sourced by the other scripts: find Python 3.13, make .venv, install localmesh with its
# test extras (the real MeshAgent SDK included). Re-runs are cheap: it reinstalls only
# when pyproject.toml changed.
set -euo pipefail

LOCALMESH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LOCALMESH_VENV:-$LOCALMESH_ROOT/.venv}"

# shellcheck source=find-python.sh
source "$LOCALMESH_ROOT/scripts/find-python.sh"

if [ ! -x "$VENV/bin/python" ]; then
    if ! PY313="$(find_python313)"; then
        echo "localmesh needs Python 3.13 (the MeshAgent SDK requires it)." >&2
        echo "Tried: \$PYTHON, python3.13, python3, \$(pyenv root)/versions/3.13*, /usr/bin/python3.13." >&2
        echo "Install it (e.g. 'pyenv install 3.13') or set PYTHON=/path/to/python3.13." >&2
        exit 1
    fi
    echo "localmesh: creating $VENV with $PY313" >&2
    "$PY313" -m venv "$VENV"
fi

STAMP="$VENV/.localmesh-installed"
WANT="$(cat "$LOCALMESH_ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
# LOCALMESH_SKIP_INSTALL=1: use the environment as it is (the test suite runs the scripts
# from inside an environment that already has localmesh installed).
if [ -z "${LOCALMESH_SKIP_INSTALL:-}" ] && { [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; }; then
    echo "localmesh: installing localmesh[test] into $VENV" >&2
    LOG="$VENV/install.log"
    # pip's build chatter goes to a log; it is shown only when the install fails.
    if ! { "$VENV/bin/python" -m pip install --disable-pip-version-check --upgrade pip \
           && "$VENV/bin/python" -m pip install --disable-pip-version-check -e "$LOCALMESH_ROOT[test]"; } \
           >"$LOG" 2>&1; then
        tail -n 40 "$LOG" >&2
        echo "localmesh: installing failed; the whole log is in $LOG" >&2
        exit 1
    fi
    echo "$WANT" > "$STAMP"
fi

export PATH="$VENV/bin:$PATH"
