"""The `localmesh worker` and `localmesh room` commands against a running emulator."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import localmesh.cli  # noqa: F401 - plugs --llm-script into the Worker's commands, run alone too
from localmesh.worker.cli import room_app, worker_app

SCRIPT = Path(__file__).parent / "scripts" / "worker.yaml"
ROOM = "cli-room"


def env_for(server) -> dict[str, str]:
    return {
        "MESHAGENT_API_URL": server.url,
        "MESHAGENT_API_KEY": server.api_key,
        "MESHAGENT_ROOM": None,
        "MESHAGENT_TOKEN": None,
    }


async def invoke(app, args: list[str], env: dict, input: bytes | None = None):
    # The command runs its own event loop, so it runs in a thread beside the server's.
    result = await asyncio.to_thread(CliRunner().invoke, app, args, env=env, input=input)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


async def test_queue_commands_round_trip(server) -> None:
    env = env_for(server)
    sent = await invoke(room_app, ["queue", "send", "--room", ROOM, "--queue", "jobs",
                                   "--json", '{"prompt": "hi"}'], env)
    assert sent.exit_code == 0, sent.output
    listed = await invoke(room_app, ["queue", "list", "--room", ROOM], env)
    assert listed.output.splitlines() == ["jobs\t1"]
    received = await invoke(room_app, ["queue", "receive", "--room", ROOM, "--queue", "jobs"], env)
    assert json.loads(received.output) == {"prompt": "hi"}
    await invoke(room_app, ["queue", "send", "--room", ROOM, "--queue", "jobs", "--json", "{}"], env)
    drained = await invoke(room_app, ["queue", "drain", "--room", ROOM, "--queue", "jobs"], env)
    assert drained.exit_code == 0
    empty = await invoke(room_app, ["queue", "receive", "--room", ROOM, "--queue", "jobs"], env)
    assert empty.output == ""


async def test_queue_send_from_a_file_and_bad_json(server, tmp_path) -> None:
    env = env_for(server)
    message = tmp_path / "m.json"
    message.write_text('{"prompt": "from a file"}')
    ok = await invoke(room_app, ["queue", "send", "--room", ROOM, "--queue", "q",
                                 "--file", str(message)], env)
    assert ok.exit_code == 0
    bad = await invoke(room_app, ["queue", "send", "--room", ROOM, "--queue", "q",
                                  "--json", "{not json"], env)
    assert bad.exit_code == 2 and "not valid JSON" in bad.output


async def test_a_room_error_exits_non_zero(server) -> None:
    result = await invoke(room_app, ["queue", "receive", "--room", ROOM, "--queue", "nope"],
                          env_for(server))
    assert result.exit_code == 1 and "error:" in result.output


async def test_storage_put_ls_cat(server, tmp_path) -> None:
    env = env_for(server)
    local = tmp_path / "hello.txt"
    local.write_text("hello room")
    put = await invoke(room_app, ["storage", "put", "--room", ROOM, str(local), "docs/hello.txt"],
                       env)
    assert put.exit_code == 0, put.output
    listing = await invoke(room_app, ["storage", "ls", "--room", ROOM], env)
    assert listing.output.splitlines() == ["docs/"]
    listing = await invoke(room_app, ["storage", "ls", "--room", ROOM, "docs"], env)
    assert listing.output.splitlines() == ["hello.txt\t10"]
    cat = await invoke(room_app, ["storage", "cat", "--room", ROOM, "docs/hello.txt"], env)
    assert cat.output == "hello room"


@pytest.mark.parametrize("storage_flag", ["--require-storage", "--storage"])
async def test_worker_join_processes_the_queue_until_idle(server, storage_flag: str) -> None:
    env = env_for(server)
    for _ in range(2):
        await invoke(room_app, ["queue", "send", "--room", ROOM, "--queue", "tasks",
                                "--json", '{"prompt": "write the report"}'], env)
    result = await invoke(worker_app, [
        "join", "--room", ROOM, "--agent-name", "w", "--queue", "tasks", storage_flag,
        "--room-rules", "agents/worker/rules.txt", "--rule", "Save results to storage.",
        "--llm-script", str(SCRIPT), "--until-idle",
    ], env)
    assert result.exit_code == 0, result.output
    assert "processed 2, failed 0" in result.output
    cat = await invoke(room_app, ["storage", "cat", "--room", ROOM, "out/report.txt"], env)
    assert cat.output == "all good"
    # The rules file was created in room storage for people to edit.
    ls = await invoke(room_app, ["storage", "ls", "--room", ROOM, "agents/worker"], env)
    assert ls.output.splitlines() == ["rules.txt\t0"]


async def test_worker_join_reads_rules_from_room_storage(server, tmp_path) -> None:
    env = env_for(server)
    # This script answers only if both rule lines reached the LLM's instructions.
    script = tmp_path / "rules-script.yaml"
    script.write_text(yaml.safe_dump(
        {"rules": [{"match": {"instructions": "(?s)line one.*line two"}, "answer": {"text": "ok"}}]}
    ))
    rules_file = tmp_path / "rules.txt"
    rules_file.write_text("line one\n\nline two\n")
    await invoke(room_app, ["storage", "put", "--room", ROOM, str(rules_file), "rules.txt"], env)
    await invoke(room_app, ["queue", "send", "--room", ROOM, "--queue", "t", "--json",
                            '{"prompt": "x"}'], env)
    result = await invoke(worker_app, [
        "join", "--room", ROOM, "--queue", "t", "--room-rules", "rules.txt",
        "--llm-script", str(script), "--max-messages", "1",
    ], env)
    assert "processed 1, failed 0" in result.output, result.output


async def test_worker_join_over_http_uses_the_servers_llm_endpoint(monkeypatch, tmp_path) -> None:
    from localmesh.emulator import RoomServer

    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    async with RoomServer(long_poll_window=2.0, llm_script=SCRIPT) as server:
        env = env_for(server)
        await invoke(room_app, ["queue", "send", "--room", ROOM, "--queue", "tasks",
                                "--json", '{"prompt": "write the report"}'], env)
        result = await invoke(worker_app, ["join", "--room", ROOM, "--queue", "tasks",
                                           "--require-storage", "--max-messages", "1"], env)
        assert "processed 1, failed 0" in result.output, result.output


async def test_worker_join_stops_cleanly_on_sigterm(server) -> None:
    env = {**os.environ, "MESHAGENT_API_URL": server.url, "MESHAGENT_API_KEY": server.api_key}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from localmesh.cli import main; main()",
        "worker", "join", "--room", ROOM, "--queue", "tasks", "--llm-script", str(SCRIPT),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        cwd=Path(__file__).parents[2],
    )
    assert process.stdout is not None
    first = await asyncio.wait_for(process.stdout.readline(), 30)
    assert b"joined room" in first, first
    process.send_signal(signal.SIGTERM)
    rest = await asyncio.wait_for(process.stdout.read(), 30)
    assert await asyncio.wait_for(process.wait(), 30) == 0
    assert b"stopped: processed 0, failed 0" in rest


def test_spec_prints_a_meshagent_service() -> None:
    result = CliRunner().invoke(worker_app, [
        "spec", "--agent-name", "worker", "--queue", "tasks", "--require-storage",
        "--room-rules", "agents/worker/rules.txt", "--rule", "Process queued tasks.",
    ])
    assert result.exit_code == 0, result.output
    spec = yaml.safe_load(result.output)
    assert (spec["kind"], spec["version"], spec["metadata"]["name"]) == ("Service", "v1", "worker")
    assert spec["agents"] == [{"name": "worker", "annotations": {"meshagent.agent.type": "Worker"}}]
    assert spec["container"]["command"] == (
        "meshagent worker join --agent-name worker --queue tasks --require-storage "
        "--room-rules agents/worker/rules.txt --rule 'Process queued tasks.'"
    )
    assert spec["container"]["environment"][0]["token"]["identity"] == "worker"


def test_missing_api_key_is_a_clear_error(monkeypatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)  # no .localmesh here
    result = CliRunner().invoke(
        room_app, ["queue", "list", "--room", ROOM],
        env={"MESHAGENT_API_KEY": None, "MESHAGENT_API_URL": None},
    )
    assert result.exit_code == 2
    assert "no API key" in result.output
