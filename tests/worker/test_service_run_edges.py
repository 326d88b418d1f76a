"""`localmesh service run`'s edges, in process: real child programs, no room needed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from localmesh.protocol.tokens import ApiKey
from localmesh.worker.config import ServerTarget
from localmesh.worker.service_run import (
    RunOptions,
    ServiceRunError,
    program_argv,
    program_env,
    run_service,
)

TARGET = ServerTarget("http://127.0.0.1:9", ApiKey.generate())  # nothing listens: no call gets far

SPEC_SERVER = """\
import json, os
from http.server import BaseHTTPRequestHandler, HTTPServer

SPEC = {"version": "v1", "kind": "Service", "metadata": {"name": "s"}, "ports": [
    {"num": "*", "type": "http",
     "endpoints": [{"path": "/agent", "meshagent": {"identity": "bot", "api": None}}]}]}

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.reply(200, SPEC)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        print("called with", body["event"], body["data"]["room_name"], flush=True)
        self.reply(500, {"error": "this agent is broken"})

    def reply(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass

HTTPServer(("127.0.0.1", int(os.environ["MESHAGENT_PORT"])), Handler).serve_forever()
"""


async def run(command: str, tmp_path: Path, **options) -> tuple[int, list[str], list[str]]:
    out: list[str] = []
    err: list[str] = []
    options.setdefault("grace", 2.0)
    code = await run_service(RunOptions(command=command, room="r", **options), TARGET,
                             out=out.append, err=err.append)
    return code, out, err


def test_the_program_is_pointed_at_the_llm_providers_too(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "https://api.anthropic.com")  # the shell's own
    env = program_env(RunOptions(command="main.py", room="r"), TARGET, 8081)
    assert env["MESHAGENT_API_URL"] == "http://127.0.0.1:9"
    assert env["OPENAI_BASE_URL"] == "http://127.0.0.1:9/openai/v1"
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9/anthropic"
    assert env["GROK_BASE_URL"] == env["XAI_BASE_URL"] == "http://127.0.0.1:9/grok/v1"


def test_the_program_is_run_as_meshagent_runs_it():
    assert program_argv("main.py --flag") == [sys.executable, "main.py", "--flag"]
    assert program_argv("app.dart") == ["dart", "run", "app.dart"]
    assert program_argv("node 'my server.js'") == ["node", "my server.js"]
    with pytest.raises(ServiceRunError, match="empty"):
        program_argv("  ")


async def test_a_missing_program_is_exit_127(tmp_path):
    code, _, err = await run("no-such-program-anywhere --x", tmp_path)
    assert code == 127
    assert "cannot start 'no-such-program-anywhere'" in err[-1]


async def test_a_program_that_exits_before_its_spec_is_reported(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("quits.py").write_text("print('bye')\n")
    code, out, err = await run("quits.py", tmp_path)
    assert code == 1  # it exited 0, but it never served: that is a failure
    assert out == ["bye"]
    assert "`quits.py` exited with code 0 before it served" in err[-1] and "| bye" in err[-1]


async def test_a_program_that_never_serves_its_spec_times_out(tmp_path):
    code, _, err = await run(f"{sys.executable} -c 'import time; time.sleep(60)'", tmp_path,
                             startup_timeout=0.5)
    assert code == 1
    assert "did not serve /.well-known/meshagent-service.json" in err[-1]
    assert "within 0.5 s" in err[-1]


async def test_a_refused_call_ends_the_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("spec_server.py").write_text(SPEC_SERVER)
    code, out, err = await run("spec_server.py", tmp_path)
    assert code == 1
    assert out == ["called with room.call r"]  # the webhook body a room sends
    assert "calling bot at" in err[-1] and "HTTP 500" in err[-1] and "broken" in err[-1]
