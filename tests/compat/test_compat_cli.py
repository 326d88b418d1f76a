"""The real ``meshagent`` CLI, as a subprocess, against the emulator."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from compat_helpers import PROMPT, sdk_client, sdk_token

pytestmark = [pytest.mark.compat, pytest.mark.slow]

ROOM = "quickstart"
MESHAGENT = shutil.which("meshagent", path=str(Path(sys.executable).parent)) or "meshagent"
CLI_TIMEOUT = 60.0  # the CLI imports a lot before it does anything


def _cli_env(server, home: Path, *, token: str | None) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),  # no ~/.meshagent profile can point the CLI elsewhere
        "MESHAGENT_ROOM": ROOM,
        **server.env(),
    }
    if token is None:
        env.pop("MESHAGENT_TOKEN", None)
    else:
        env["MESHAGENT_TOKEN"] = token
    return env


async def _meshagent(env: dict[str, str], *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        MESHAGENT, *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(CLI_TIMEOUT):
            output, _ = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    return process.returncode or 0, output.decode(errors="replace")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


async def test_cli_queue_send_with_a_room_token(server, home):
    env = _cli_env(server, home, token=sdk_token(server, room=ROOM, name="cli-user", role="user"))
    code, output = await _meshagent(
        env, "room", "queue", "send", "--room", ROOM, "--queue", "tasks",
        "--json", '{"prompt": "hi"}',
    )
    assert code == 0, output
    assert "Connecting to room" in output
    assert "Error" not in output and "Traceback" not in output, output
    async with sdk_client(server, ROOM, sdk_token(server, room=ROOM)) as room:
        async with asyncio.timeout(PROMPT):
            assert await room.queues.receive(name="tasks", wait=False) == {"prompt": "hi"}


async def test_cli_with_only_the_api_key(server, home):
    """No MESHAGENT_TOKEN: the CLI asks the accounts connect endpoint for a room token."""
    env = _cli_env(server, home, token=None)
    assert "MESHAGENT_API_KEY" in env
    code, output = await _meshagent(
        env, "room", "queue", "send", "--room", ROOM, "--queue", "tasks",
        "--json", json.dumps({"prompt": "from the key", "n": [1, 2]}),
    )
    assert code == 0, output
    assert "Traceback" not in output, output

    code, output = await _meshagent(env, "room", "queue", "size", "--room", ROOM, "--queue", "tasks")
    assert code == 0, output
    assert output.strip().splitlines()[-1] == "1"

    async with sdk_client(server, ROOM, sdk_token(server, room=ROOM)) as room:
        assert await room.queues.receive(name="tasks", wait=False) == {
            "prompt": "from the key", "n": [1, 2]}
        await room.queues.send(name="replies", message={"answer": 42})

    code, output = await _meshagent(env, "room", "queue", "receive", "--room", ROOM,
                                    "--queue", "replies")
    assert code == 0, output
    assert "42" in output and "answer" in output


async def test_cli_token_for_another_room_is_refused_by_the_connect_endpoint(server, home):
    """--room differs from MESHAGENT_ROOM: the CLI asks the connect endpoint with the token,
    and a participant token is scoped to its own room, so nothing reaches the other room."""
    env = _cli_env(server, home, token=sdk_token(server, room=ROOM))
    env.pop("MESHAGENT_API_KEY")
    code, output = await _meshagent(
        env, "room", "queue", "send", "--room", "side-room", "--queue", "q", "--json", "{}",
    )
    assert code != 0 or "403" in output, output
    async with sdk_client(server, "side-room", sdk_token(server, room="side-room")) as room:
        assert await room.queues.list() == []


async def test_cli_with_a_bad_key_fails(server, home):
    env = _cli_env(server, home, token=None)
    env["MESHAGENT_API_KEY"] = env["MESHAGENT_API_KEY"][:-4] + "oops"
    code, output = await _meshagent(
        env, "room", "queue", "send", "--room", ROOM, "--queue", "tasks", "--json", "{}",
    )
    assert code != 0 or "401" in output, output
    async with sdk_client(server, ROOM, sdk_token(server, room=ROOM)) as room:
        assert await room.queues.list() == []


async def test_real_worker_join_runs_the_quickstart_against_the_emulator(server, home):
    """The docs' quickstart with the real CLI: `meshagent worker join` with the env from
    `localmesh env` (no token: it mints its own from the API key) saves the demo's poem."""
    from localmesh.scripted_llm import load_demo_script

    server.long_poll_window = 0.5
    env = _cli_env(server, home, token=None)
    env.pop("MESHAGENT_ROOM")
    worker = await asyncio.create_subprocess_exec(
        MESHAGENT, "worker", "join", "--room", ROOM, "--agent-name", "poet", "--queue", "tasks",
        "--storage", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with sdk_client(server, ROOM, sdk_token(server, room=ROOM)) as room:
            saved = asyncio.Event()
            room.storage.on("file.updated", lambda **event: saved.set())
            async with asyncio.timeout(CLI_TIMEOUT):
                await server.state.queues.until_waiting(ROOM, "tasks")  # the worker is polling
                await room.queues.send(name="tasks", message={"prompt": "save a poem about ai to poem.txt"})
                await saved.wait()
            poem = (await room.storage.download(path="poem.txt")).data.decode()
        assert poem == load_demo_script().rules[0].answer.calls[0].arguments["text"]
        (entry, *_) = server.llm.transcript(ROOM)
        # the real CLI bundles the storage tools in its own namespace; the demo call has none
        assert [tool["name"] for tool in entry.request["tools"]] == ["thread_toolkit"]
    finally:
        worker.terminate()
        async with asyncio.timeout(CLI_TIMEOUT):
            output, _ = await worker.communicate()
    assert "Worker connected" in output.decode(errors="replace")
