#!/usr/bin/env bash
# The offline quickstart, as the MeshAgent Worker docs run it against the cloud: start a
# local room server, call a worker into the room, send it a task, and print the file it
# saved in room storage. The LLM is the emulator's built-in demo script: no account, no
# network.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"

ROOM=quickstart
QUEUE=tasks
DATA_DIR="$(mktemp -d "${TMPDIR:-/tmp}/localmesh-quickstart.XXXXXX")"
PORT="${LOCALMESH_PORT:-$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
SERVER_PID=""
WORKER_PID=""

cleanup() {
    [ -n "$WORKER_PID" ] && kill "$WORKER_PID" 2>/dev/null || true
    [ -n "$SERVER_PID" ] && kill -TERM "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
    rm -rf "$DATA_DIR"
}
trap cleanup EXIT

echo "==> localmesh serve --port $PORT --data-dir $DATA_DIR"
localmesh serve --port "$PORT" --data-dir "$DATA_DIR" >"$DATA_DIR/server.log" 2>&1 &
SERVER_PID=$!
python - "$PORT" <<'PY'
import sys, time, httpx
deadline = time.monotonic() + 30
while True:
    try:
        if httpx.get(f"http://127.0.0.1:{sys.argv[1]}/healthz", timeout=1).status_code == 200:
            break
    except httpx.HTTPError:
        pass
    if time.monotonic() > deadline:
        sys.exit("localmesh serve did not become ready within 30 s")
    time.sleep(0.1)
PY

eval "$(localmesh env --port "$PORT" --data-dir "$DATA_DIR")"

echo "==> localmesh worker join --room $ROOM --agent-name poet --queue $QUEUE --require-storage"
localmesh worker join --room "$ROOM" --agent-name poet --queue "$QUEUE" --require-storage \
    --rule "You are a poet. Save what you write in room storage." --max-messages 1 &
WORKER_PID=$!

echo "==> localmesh room queue send --room $ROOM --queue $QUEUE --json '{\"prompt\": \"save a poem about ai to poem.txt\"}'"
localmesh room queue send --room "$ROOM" --queue "$QUEUE" \
    --json '{"prompt": "save a poem about ai to poem.txt"}'

wait "$WORKER_PID"
WORKER_PID=""

echo "==> localmesh room storage cat --room $ROOM poem.txt"
localmesh room storage cat --room "$ROOM" poem.txt
echo
