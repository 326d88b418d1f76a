"""``localmesh serve --llm-script FILE``, end to end: a real process on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from localmesh.emulator.config import local_project_key

STARTUP = 30.0  # seconds the process may take to import and listen, on a loaded machine
EXIT = 15.0

SCRIPT = """
description: the serve test's script
rules:
  - name: from-the-file
    match:
      user: (?i)ping
    answer:
      text: pong from the --llm-script file
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def localmesh_command() -> list[str]:
    """The installed ``localmesh`` console script next to this interpreter, else its entry point."""
    script = Path(sys.executable).with_name("localmesh")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from localmesh.cli import main; main()"]


async def wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    """Poll ``GET /healthz`` until it answers 200, the process dies, or STARTUP passes."""
    async with httpx.AsyncClient(timeout=2) as http, asyncio.timeout(STARTUP):
        while True:
            if process.poll() is not None:
                raise AssertionError(f"localmesh serve exited early with {process.returncode}")
            try:
                if (await http.get(f"{url}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_serve_plays_the_llm_script_file_and_stops_on_sigterm(tmp_path: Path) -> None:
    script = tmp_path / "ping.yaml"
    script.write_text(SCRIPT)
    data_dir = tmp_path / "data"
    key = await local_project_key(data_dir)  # the key the server will load from its data dir
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MESHAGENT_", "OPENAI_"))}
    process = subprocess.Popen(
        [*localmesh_command(), "serve", "--port", str(port), "--data-dir", str(data_dir),
         "--llm-script", str(script)],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        await wait_healthy(url, process)
        headers = {"Authorization": f"Bearer {key.text}", "X-Localmesh-Room": "serve-room"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as http:
            reply = await http.post("/openai/v1/responses", json={"model": "m", "input": "ping"})
            assert reply.status_code == 200, reply.text
            assert reply.json()["output"][0]["content"][0]["text"] == "pong from the --llm-script file"
            transcript = (await http.get("/_localmesh/llm/rooms/serve-room/transcript")).json()
        assert [e["rule"] for e in transcript["entries"]] == ["from-the-file"]
        assert (data_dir / "localmesh.db").exists()
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            output, _ = await asyncio.to_thread(process.communicate, timeout=EXIT)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
            raise AssertionError("localmesh serve did not stop within 15 s of SIGTERM") from None
    assert process.returncode == 0, output.decode(errors="replace")
    assert b"localmesh: shutting down" in output


@pytest.mark.slow
def test_serve_refuses_an_invalid_script_and_exits(tmp_path: Path) -> None:
    script = tmp_path / "bad.yaml"
    script.write_text("rules: [{answer: {txt: x}}]")
    result = subprocess.run(
        [*localmesh_command(), "serve", "--port", str(free_port()), "--data-dir", str(tmp_path / "d"),
         "--llm-script", str(script)],
        capture_output=True, timeout=EXIT, cwd=tmp_path,
    )
    assert result.returncode == 2
    # One line that says what is wrong and where, no traceback.
    assert b"rules[0].answer: unknown key 'txt'" in result.stderr
    assert b"Traceback" not in result.stderr + result.stdout
