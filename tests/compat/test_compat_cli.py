"""The real ``meshagent`` CLI, as a subprocess, against the emulator."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from pathlib import Path

import httpx
import pytest
from compat_helpers import PROMPT, installed_version, sdk_client, sdk_token, wait_for_transcript
from localmesh_serve import run, serve
from meshagent.api import ApiScope, ParticipantToken, RoomClient
from meshagent.api.websocket_protocol import WebSocketClientProtocol
from packaging.version import Version
from targets import room_name

from localmesh.scripted_llm import load_demo_script

pytestmark = [pytest.mark.compat, pytest.mark.slow]

ROOM = "quickstart"
MESHAGENT = shutil.which("meshagent", path=str(Path(sys.executable).parent)) or "meshagent"
CLI_TIMEOUT = 60.0  # the CLI imports a lot before it does anything
# meshagent-openai sends each toolkit as a "namespace" tool from 0.44.0 on; flat functions before.
NAMESPACED_TOOLS = Version("0.44.0")
GROK_ROUTE = Version("0.50.1")


def _cli_env(server, home: Path, *, token: str | None) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),  # no ~/.meshagent profile can point the CLI elsewhere
        "MESHAGENT_ROOM": room_name(server, ROOM),
        **server.env(),
    }
    if token is None:
        env.pop("MESHAGENT_TOKEN", None)
    else:
        env["MESHAGENT_TOKEN"] = token
    return env


async def _meshagent(env: dict[str, str], *args: str) -> tuple[int, str]:
    return await run(env, MESHAGENT, *args, timeout=CLI_TIMEOUT)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


async def test_cli_queue_send_with_a_room_token(server, home):
    cli_room = room_name(server, ROOM)
    env = _cli_env(server, home, token=sdk_token(server, room=ROOM, name="cli-user", role="user"))
    code, output = await _meshagent(
        env, "room", "queue", "send", "--room", cli_room, "--queue", "tasks",
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
    cli_room = room_name(server, ROOM)
    env = _cli_env(server, home, token=None)
    assert "MESHAGENT_API_KEY" in env
    code, output = await _meshagent(
        env, "room", "queue", "send", "--room", cli_room, "--queue", "tasks",
        "--json", json.dumps({"prompt": "from the key", "n": [1, 2]}),
    )
    assert code == 0, output
    assert "Traceback" not in output, output

    code, output = await _meshagent(env, "room", "queue", "size", "--room", cli_room, "--queue", "tasks")
    assert code == 0, output
    assert output.strip().splitlines()[-1] == "1"

    async with sdk_client(server, ROOM, sdk_token(server, room=ROOM)) as room:
        assert await room.queues.receive(name="tasks", wait=False) == {
            "prompt": "from the key", "n": [1, 2]}
        await room.queues.send(name="replies", message={"answer": 42})

    code, output = await _meshagent(env, "room", "queue", "receive", "--room", cli_room,
                                    "--queue", "replies")
    assert code == 0, output
    assert "42" in output and "answer" in output


async def test_cli_token_for_another_room_is_refused_by_the_connect_endpoint(server, home):
    """--room differs from MESHAGENT_ROOM: the CLI asks the connect endpoint with the token,
    and a participant token is scoped to its own room, so nothing reaches the other room."""
    side_room = room_name(server, "side-room")
    env = _cli_env(server, home, token=sdk_token(server, room=ROOM))
    env.pop("MESHAGENT_API_KEY")
    code, output = await _meshagent(
        env, "room", "queue", "send", "--room", side_room, "--queue", "q", "--json", "{}",
    )
    assert code != 0 or "403" in output, output
    async with sdk_client(server, "side-room", sdk_token(server, room="side-room")) as room:
        assert await room.queues.list() == []


async def test_cli_with_a_bad_key_fails(server, home):
    cli_room = room_name(server, ROOM)
    env = _cli_env(server, home, token=None)
    env["MESHAGENT_API_KEY"] = env["MESHAGENT_API_KEY"][:-4] + "oops"
    code, output = await _meshagent(
        env, "room", "queue", "send", "--room", cli_room, "--queue", "tasks", "--json", "{}",
    )
    assert code != 0 or "401" in output, output
    async with sdk_client(server, ROOM, sdk_token(server, room=ROOM)) as room:
        assert await room.queues.list() == []


def _poem_saved(entries: list) -> bool:
    return any(e.rule == "poem-saved" for e in entries)


async def _quickstart(server, home: Path, *command: str) -> tuple[str, str]:
    """Start the real CLI agent ``command`` with the env from `localmesh env` (no token: it mints
    its own from the API key), send the quickstart task once it polls the queue, and wait for
    poem.txt and the LLM's last answer; the poem and the agent's output."""
    server.long_poll_window = 0.5
    env = _cli_env(server, home, token=None)
    env.pop("MESHAGENT_ROOM")
    agent = await asyncio.create_subprocess_exec(
        MESHAGENT, *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with sdk_client(server, ROOM, sdk_token(server, room=ROOM)) as room:
            saved = asyncio.Event()
            room.storage.on("file.updated", lambda **event: saved.set())
            async with asyncio.timeout(CLI_TIMEOUT):
                await server.state.queues.until_waiting(ROOM, "tasks")  # the agent is polling
                await room.queues.send(name="tasks", message={"prompt": "save a poem about ai to poem.txt"})
                await saved.wait()
            poem = (await room.storage.download(path="poem.txt")).data.decode()
            await wait_for_transcript(server, ROOM, _poem_saved)
    finally:
        if agent.returncode is None:
            agent.terminate()
        async with asyncio.timeout(CLI_TIMEOUT):
            output, _ = await agent.communicate()
        print(output.decode(errors="replace"))  # shown by pytest when the test fails
    return poem, output.decode(errors="replace")


POEM = load_demo_script().rules[0].answer.calls[0].arguments["text"]
WORKER_JOIN = ("worker", "join", "--room", ROOM, "--agent-name", "poet", "--queue", "tasks", "--storage")


@pytest.mark.localmesh_only(reason="the scripted LLM plays the quickstart's poem")
async def test_real_worker_join_runs_the_quickstart_against_the_emulator(server, home):
    """The docs' quickstart with the real CLI: `meshagent worker join` saves the demo's poem."""
    poem, output = await _quickstart(server, home, *WORKER_JOIN)
    assert poem == POEM
    assert "Worker connected" in output
    (entry, *_) = server.llm.transcript(ROOM)
    assert (entry.provider, entry.api, entry.transport) == ("openai", "responses", "websocket")
    tools = entry.request["tools"]
    if installed_version("meshagent-openai") >= NAMESPACED_TOOLS:
        # the real CLI bundles the storage tools in its own namespace; the demo call has none
        assert [tool["name"] for tool in tools] == ["thread_toolkit"]
        assert "write_file" in {tool["name"] for tool in tools[0]["tools"]}
    else:  # flat functions; the demo call names one of them
        assert "write_file" in {tool["name"] for tool in tools}
        assert all(tool["type"] == "function" for tool in tools)


@pytest.mark.localmesh_only(reason="the scripted LLM plays the quickstart's poem")
async def test_real_worker_join_with_a_claude_model_speaks_anthropic_messages(server, home):
    """`--model claude-*`: the CLI's Anthropic adapter streams from {MESHAGENT_API_URL}/anthropic
    (ANTHROPIC_BASE_URL, from `localmesh env`), with the room token as its x-api-key."""
    poem, output = await _quickstart(
        server, home, *WORKER_JOIN, "--model", "claude-sonnet-4-5", "--rule", "save results")
    assert poem == POEM
    assert "Worker connected" in output and "Error from Anthropic" not in output, output
    entries = server.llm.transcript(ROOM)
    assert [(e.provider, e.api, e.model, e.rule, e.transport) for e in entries] == [
        ("anthropic", "messages", "claude-sonnet-4-5", "save-poem", "stream"),
        ("anthropic", "messages", "claude-sonnet-4-5", "poem-saved", "stream"),
    ]
    assert entries[0].request["system"].startswith("save results")
    assert "write_file" in [tool["name"] for tool in entries[0].request["tools"]]


@pytest.mark.localmesh_only(reason="the scripted LLM plays the quickstart's poem")
async def test_real_worker_join_with_a_grok_model_uses_the_openai_responses_route(server, home):
    """`meshagent worker join` sends grok-* models to its OpenAI Responses adapter (only
    `meshagent process` picks the Grok one): the demo runs there, recorded under that model."""
    poem, _ = await _quickstart(server, home, *WORKER_JOIN, "--model", "grok-4.6")
    assert poem == POEM
    entries = server.llm.transcript(ROOM)
    assert {(e.provider, e.api, e.model) for e in entries} == {("openai", "responses", "grok-4.6")}
    assert [e.rule for e in entries] == ["save-poem", "poem-saved"]


@pytest.mark.localmesh_only(reason="the scripted LLM plays the quickstart's poem")
async def test_real_process_join_with_a_grok_model_speaks_to_the_grok_route(server, home):
    """`meshagent process join --model grok-*` builds the SDK's GrokResponsesAdapter on
    GROK_BASE_URL (`localmesh env` exports it): the demo saves the poem through /grok/v1.
    Threads need datasets and sync documents, which localmesh does not emulate, hence
    `--threading-mode none --thread-storage none`."""
    poem, output = await _quickstart(
        server, home, "process", "join", "--room", ROOM, "--agent-name", "poet",
        "--channel", "queue:tasks", "--storage", "--model", "grok-4.6",
        "--threading-mode", "none", "--thread-storage", "none",
    )
    assert poem == POEM
    entries = server.llm.transcript(ROOM)
    # `process join` sends grok-* models to GROK_BASE_URL from meshagent-cli 0.50.1 on; before,
    # through its OpenAI Responses adapter at the OpenAI base URL.
    provider = "grok" if installed_version("meshagent-cli") >= GROK_ROUTE else "openai"
    assert [(e.provider, e.api, e.model, e.rule) for e in entries if e.model == "grok-4.6"] == [
        (provider, "responses", "grok-4.6", "save-poem"), (provider, "responses", "grok-4.6", "poem-saved"),
    ]
    assert "not supported by localmesh" not in output, output


@pytest.mark.localmesh_only(reason="the scripted LLM plays the quickstart's poem")
async def test_the_issue_commands_with_claude_against_localmesh_serve(home):
    """What issue 17 tried, verbatim, against a `localmesh serve` process: a claude worker
    joined with the real CLI saves the default demo's poem."""
    async with serve("--long-poll-window", "0.5", data_dir=None, log=home.parent / "serve.log",
                     env={"PATH": os.environ.get("PATH", ""), "HOME": str(home)},
                     stop_timeout=CLI_TIMEOUT) as server:
        await _claude_worker_saves_the_poem(home, server.exports)
        await server.stop()
    assert server.process.returncode == 0


async def _claude_worker_saves_the_poem(home: Path, served: dict[str, str]) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), **served}
    worker = await asyncio.create_subprocess_exec(
        MESHAGENT, "worker", "join", "--room", "quickstart", "--agent-name", "worker", "--queue", "tasks",
        "--storage", "--model", "claude-sonnet-4-5", "--rule", "save results",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        token = ParticipantToken(name="watcher")
        token.add_room_grant(ROOM)
        token.add_api_grant(ApiScope.agent_default())
        protocol = WebSocketClientProtocol(url=f"{env['MESHAGENT_ROOM_URL']}/rooms/{ROOM}",
                                           token=token.to_jwt(api_key=env["MESHAGENT_API_KEY"]))
        async with RoomClient(protocol_factory=protocol.create_factory()) as room:
            saved = asyncio.Event()
            room.storage.on("file.updated", lambda **event: saved.set())
            code, output = await _meshagent(
                env, "room", "queue", "send", "--room=quickstart", "--queue=tasks",
                "--json", '{"prompt": "save a poem about ai to poem.txt"}')
            assert code == 0, output
            async with asyncio.timeout(CLI_TIMEOUT):
                await saved.wait()
            assert (await room.storage.download(path="poem.txt")).data.decode() == POEM
        async with httpx.AsyncClient() as http:
            reply = await http.get(f"{env['MESHAGENT_API_URL']}/_localmesh/llm/rooms/{ROOM}/transcript",
                                   headers={"Authorization": f"Bearer {env['MESHAGENT_API_KEY']}"})
        first = reply.json()["entries"][0]
        assert (first["provider"], first["api"], first["model"], first["rule"]) == (
            "anthropic", "messages", "claude-sonnet-4-5", "save-poem")
    finally:
        if worker.returncode is None:
            worker.terminate()
        async with asyncio.timeout(CLI_TIMEOUT):
            await worker.communicate()
