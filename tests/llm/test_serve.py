"""``localmesh serve --llm-script FILE``, end to end: a real process on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest
from localmesh_serve import LOCALMESH_COMMAND, serve

from localmesh.emulator.config import local_project_key

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


@pytest.mark.slow
async def test_serve_plays_the_llm_script_file_and_stops_on_sigterm(tmp_path: Path) -> None:
    script = tmp_path / "ping.yaml"
    script.write_text(SCRIPT)
    data_dir = tmp_path / "data"
    key = await local_project_key(data_dir)  # the key the server will load from its data dir
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MESHAGENT_", "OPENAI_"))}
    async with serve("--llm-script", str(script), data_dir=data_dir, log=tmp_path / "serve.log",
                     env=env, cwd=tmp_path, stop_timeout=EXIT) as served:
        url = served.url
        headers = {"Authorization": f"Bearer {key.text}", "X-Localmesh-Room": "serve-room"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as http:
            reply = await http.post("/openai/v1/responses", json={"model": "m", "input": "ping"})
            assert reply.status_code == 200, reply.text
            assert reply.json()["output"][0]["content"][0]["text"] == "pong from the --llm-script file"
            transcript = (await http.get("/_localmesh/llm/rooms/serve-room/transcript")).json()
        assert [e["rule"] for e in transcript["entries"]] == ["from-the-file"]
        assert (data_dir / "localmesh.db").exists()
        await served.stop()  # a failure if it takes over EXIT seconds
    output = served.log.read_bytes()
    assert served.process.returncode == 0, output.decode(errors="replace")
    assert b"localmesh: shutting down" in output


@pytest.mark.slow
def test_serve_refuses_an_invalid_script_and_exits(tmp_path: Path) -> None:
    script = tmp_path / "bad.yaml"
    script.write_text("rules: [{answer: {txt: x}}]")
    result = subprocess.run(
        [*LOCALMESH_COMMAND, "serve", "--port", "0", "--data-dir", str(tmp_path / "d"),
         "--llm-script", str(script)],
        capture_output=True, timeout=EXIT, cwd=tmp_path,
    )
    assert result.returncode == 2
    # One line that says what is wrong and where, no traceback.
    assert b"rules[0].answer: unknown key 'txt'" in result.stderr
    assert b"Traceback" not in result.stderr + result.stdout
