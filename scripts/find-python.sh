#!/usr/bin/env bash
# Find a Python 3.13 interpreter (the MeshAgent SDK requires it). Sourced, it defines
# find_python313; run, it prints the interpreter's path (exit 1 when there is none).
# Used by bootstrap.sh and by noxfile.py, so the version matrix builds its virtual
# environments from the same interpreter as the main one.

find_python313() {
    local candidate
    # python3.13 on PATH may be a pyenv shim that refuses to run: check that it really runs.
    for candidate in "${PYTHON:-}" python3.13 python3; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 \
            && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null; then
            command -v "$candidate"; return 0
        fi
    done
    local root
    root="$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"
    for candidate in "$root"/versions/3.13*/bin/python3 /usr/local/bin/python3.13 /usr/bin/python3.13; do
        if [ -x "$candidate" ] && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null; then
            echo "$candidate"; return 0
        fi
    done
    return 1
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    find_python313
fi
