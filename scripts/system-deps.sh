#!/usr/bin/env bash
# System packages the test suite needs beyond Python: Chromium, for the Studio's browser tests
# (Playwright drives the system browser; it never downloads one). On a fresh Debian/Ubuntu
# machine run as root (as CI is) it installs what is missing; otherwise it says what to do.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
    || { [ -n "${LOCALMESH_CHROMIUM:-}" ] && [ -x "$LOCALMESH_CHROMIUM" ]; }; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "localmesh: installing chromium (apt-get) for the Studio's browser tests" >&2
    export DEBIAN_FRONTEND=noninteractive
    LOG="$(mktemp "${TMPDIR:-/tmp}/localmesh-apt.XXXXXX")"
    if ! { apt-get update -q && apt-get install -y -q chromium; } >"$LOG" 2>&1; then
        tail -n 30 "$LOG" >&2
        echo "localmesh: installing chromium failed; the whole log is in $LOG" >&2
        exit 1
    fi
    rm -f "$LOG"
    exit 0
fi

echo "localmesh: no Chromium found; the Studio's browser tests will be skipped (in CI: fail)." >&2
echo "  Install it (Debian/Ubuntu: sudo apt-get install chromium) or set LOCALMESH_CHROMIUM=/path/to/chrome." >&2
