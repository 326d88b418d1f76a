"""`service run` with the MeshAgent docs' sample, against a real `localmesh serve`.

The docs' `main.py` (only its imports changed to localmesh's Worker SDK) runs under both
`localmesh service run` and the real `meshagent service run` 0.56.0; the docs' `push_queue.py`
(the real SDK) sends it a task; the poem it saves is read back with `meshagent room storage get`.
`localmesh service run` also reports a program that dies at import at once, forwards Ctrl-C,
and leaves no process behind.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from live_localmesh import (
    LOCALMESH,
    MESHAGENT,
    LiveServer,
    alive,
    children_of,
    live_server,
    run,
    wait_gone,
    watched,
)
from meshagent.api import ApiScope, ParticipantToken, RoomClient
from meshagent.api.websocket_protocol import WebSocketClientProtocol

from localmesh.scripted_llm import load_demo_script

pytestmark = [pytest.mark.compat, pytest.mark.slow]

ROOM = "quickstart"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "worker-service"
POEM = load_demo_script().rules[0].answer.calls[0].arguments["text"]
STARTED = 60.0  # seconds for a CLI plus a Python service to start on a busy machine
DONE = 30.0  # a queued task to a saved file: an LLM round trip and two storage calls
STOPPED = 15.0


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """The docs' two files, copied as a user would have them."""
    work = tmp_path / "work"
    work.mkdir()
    for name in ("main.py", "push_queue.py"):
        shutil.copy(EXAMPLE / name, work / name)
    return work


@asynccontextmanager
async def poem_watch(server: LiveServer) -> AsyncIterator[asyncio.Event]:
    """An event set when poem.txt is written in the room (a real SDK participant listens)."""
    token = ParticipantToken(name="watcher")
    token.add_room_grant(ROOM)
    token.add_api_grant(ApiScope.agent_default())
    jwt = token.to_jwt(api_key=server.env["MESHAGENT_API_KEY"])
    protocol = WebSocketClientProtocol(url=f"ws://127.0.0.1:{server.port}/rooms/{ROOM}", token=jwt)
    saved = asyncio.Event()
    async with RoomClient(protocol_factory=protocol.create_factory()) as room:

        def on_updated(**event) -> None:
            if event.get("path") == "poem.txt":
                saved.set()

        room.storage.on("file.updated", on_updated)
        yield saved


async def push_task_and_read_poem(server: LiveServer, workdir: Path, env: dict[str, str]) -> None:
    async with poem_watch(server) as saved:
        code, out = await run(env, sys.executable, "push_queue.py", cwd=workdir)
        assert code == 0 and "sent a task to worker-queue" in out, out
        async with asyncio.timeout(DONE):
            await saved.wait()
    code, out = await run(env, MESHAGENT, "room", "storage", "get", "room://poem.txt", "--room", ROOM)
    assert code == 0, out
    assert out.rstrip("\n") == POEM


async def test_docs_sample_under_localmesh_service_run(tmp_path: Path, workdir: Path):
    async with live_server(tmp_path) as server:
        env = server.cli_env()
        async with watched(env, LOCALMESH, "service", "run", "main.py", "--room", ROOM,
                           cwd=workdir) as service:
            started = await service.wait_for_line(r"\(pid (\d+)\)", STARTED)
            child = int(started.group(1))
            await service.wait_for_line(r"called 'worker' into room 'quickstart'", STARTED)
            await push_task_and_read_poem(server, workdir, env)
            # the program's own log lines come through as it writes them
            await service.wait_for_line(r"worker: response I saved a poem", DONE)

            service.process.send_signal(signal.SIGINT)  # what Ctrl-C sends
            assert await service.wait(STOPPED) == 130, service.output
            assert "stopping the service (SIGINT" in service.output
            assert not alive(child), "the service program outlived `localmesh service run`"


async def test_docs_sample_under_meshagent_service_run(tmp_path: Path, workdir: Path):
    async with live_server(tmp_path) as server:
        env = server.cli_env()
        async with watched(env, MESHAGENT, "service", "run", "main.py", "--room", ROOM,
                           cwd=workdir) as service:
            # the real CLI runs `python3 main.py` (ours, first on PATH) and calls /worker in
            await service.wait_for_line(r"Connecting endpoint /worker", STARTED)
            await service.wait_for_line(r"worker answering the call into room quickstart", STARTED)
            children = children_of(service.process.pid)
            assert len(children) == 1, children
            await push_task_and_read_poem(server, workdir, env)

            # the real CLI ignores SIGINT; SIGTERM ends it, and our ServiceHost stops at once
            service.process.send_signal(signal.SIGTERM)
            await service.wait(STOPPED)
            await wait_gone(children[0], STOPPED)


CRASHES_AT_IMPORT = """\
import time
from pathlib import Path

Path("crashed-at").write_text(repr(time.time()))
print("about to import the docs' telemetry module", flush=True)
from meshagent.otel import otel_config  # not installed: ModuleNotFoundError
"""


async def test_a_program_that_crashes_at_import_is_reported_within_2_s(tmp_path: Path, workdir: Path):
    (workdir / "crash.py").write_text(CRASHES_AT_IMPORT)
    async with live_server(tmp_path) as server:
        began = time.time()
        code, out = await run(server.cli_env(), LOCALMESH, "service", "run", "crash.py",
                              "--room", ROOM, cwd=workdir)
        ended = time.time()
    assert code == 1, out
    assert "`crash.py` exited with code 1 before it served /.well-known/meshagent-service.json" in out
    assert "ModuleNotFoundError: No module named 'meshagent.otel'" in out
    crashed = float((workdir / "crashed-at").read_text())
    assert ended - crashed < 2.0, f"reported {ended - crashed:.2f}s after the crash:\n{out}"
    assert ended - began < 20.0  # the real CLI takes ~105 s


STUBBORN = """\
import json, os, signal, subprocess, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

signal.signal(signal.SIGINT, signal.SIG_IGN)   # a program that will not stop by itself
signal.signal(signal.SIGTERM, signal.SIG_IGN)
helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(f"helper pid {helper.pid}", flush=True)

class Spec(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"version": "v1", "kind": "Service", "metadata": {"name": "s"},
                           "ports": []}).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

HTTPServer(("127.0.0.1", int(os.environ["MESHAGENT_PORT"])), Spec).serve_forever()
"""


async def test_ctrl_c_stops_the_program_and_everything_it_started(tmp_path: Path):
    """Ctrl-C is forwarded; a program that ignores it is killed after the grace period,
    and so is the helper process it started."""
    (tmp_path / "stubborn.py").write_text(STUBBORN)
    async with live_server(tmp_path) as server:
        async with watched(server.cli_env(), LOCALMESH, "service", "run", "stubborn.py", "--room",
                           ROOM, "--grace", "1", cwd=tmp_path) as service:
            child = int((await service.wait_for_line(r"\(pid (\d+)\)", STARTED)).group(1))
            helper = int((await service.wait_for_line(r"helper pid (\d+)", STARTED)).group(1))
            await service.wait_for_line(r"no meshagent endpoints", STARTED)
            service.process.send_signal(signal.SIGINT)
            assert await service.wait(STOPPED) == 130, service.output
            assert "did not stop within 1 s; killed" in service.output
            await wait_gone(child, STOPPED)
            await wait_gone(helper, STOPPED)


async def test_the_program_does_not_outlive_a_killed_service_run(tmp_path: Path, workdir: Path):
    """kill -9 leaves no chance to clean up: the program gets SIGTERM from the kernel
    (its parent-death signal) and stops."""
    async with live_server(tmp_path) as server:
        async with watched(server.cli_env(), LOCALMESH, "service", "run", "main.py", "--room", ROOM,
                           cwd=workdir) as service:
            child = int((await service.wait_for_line(r"\(pid (\d+)\)", STARTED)).group(1))
            await service.wait_for_line(r"called 'worker'", STARTED)
            service.process.send_signal(signal.SIGKILL)
            await service.wait(STOPPED)
            await wait_gone(child, STOPPED)
