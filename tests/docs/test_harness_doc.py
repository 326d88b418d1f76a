"""docs/harness.md's faults and LLM-rules sections, and docs/llm-scripts.md's checks and Python
rules: the examples run (the docs' test functions are called with this test's fixtures), the
commands work against a live emulator, and the messages shown are the real ones."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from doc_blocks import block, blocks, shell_commands
from meshagent.api import RoomException

from localmesh.emulator.faults import ADMIN_PATH
from localmesh.fixtures.worker import run_until_drained
from localmesh.scripted_llm import ScriptedError, ScriptFailed, ScriptPlayer, loads_script

HARNESS_MD = "docs/harness.md"
LLM_MD = "docs/llm-scripts.md"
LOCALMESH = str(Path(sys.executable).parent / "localmesh")


def define(code: str, **names: object) -> dict:
    """Run a doc block that defines functions; its namespace."""
    namespace: dict = {"pytest": pytest, "RoomException": RoomException, **names}
    exec(compile(code, "<doc block>", "exec"), namespace)  # noqa: S102 - the docs' own code
    return namespace


# ---------------------------------------------------------------- virtual time


async def test_the_virtual_time_example_runs(localmesh_server, localmesh_clock, localmesh_room) -> None:
    code = block(HARNESS_MD, "python", "test_an_empty_long_poll_ends_after_its_window")
    test = define(code, asyncio=asyncio)["test_an_empty_long_poll_ends_after_its_window"]
    async with asyncio.timeout(10):
        await test(localmesh_server, localmesh_clock, localmesh_room)


@pytest.mark.localmesh_clock(auto=True)  # as the example is marked
async def test_the_auto_mode_example_runs(localmesh_server, localmesh_clock, localmesh_room) -> None:
    code = block(HARNESS_MD, "python", "test_a_long_poll_window_passes_by_itself")
    assert "@pytest.mark.localmesh_clock(auto=True)" in code
    test = define(code)["test_a_long_poll_window_passes_by_itself"]
    started = time.monotonic()
    async with asyncio.timeout(10):
        await test(localmesh_server, localmesh_clock, localmesh_room)
    assert time.monotonic() - started < 1.0 and localmesh_clock.jumps >= 1


# ---------------------------------------------------------------- faults


async def test_the_aimed_fault_example_runs(localmesh_server, meshagent_room) -> None:
    code = block(HARNESS_MD, "python", "test_alices_second_send_fails_and_nothing_is_lost")
    await define(code)["test_alices_second_send_fails_and_nothing_is_lost"](localmesh_server, meshagent_room)


async def test_the_download_and_upload_example_runs(localmesh_server, meshagent_room) -> None:
    code = block(HARNESS_MD, "python", "test_a_cut_download_and_a_failed_upload_leave_the_file_whole")
    test = define(code)["test_a_cut_download_and_a_failed_upload_leave_the_file_whole"]
    await test(localmesh_server, meshagent_room)


async def test_the_fault_commands_in_the_doc_work(localmesh_server) -> None:
    commands = [c for c in shell_commands(HARNESS_MD, "localmesh") if c.startswith("localmesh fault")]
    assert len(commands) == 5
    env = {**os.environ, **localmesh_server.env()}
    outputs = []
    for command in commands:
        process = await asyncio.create_subprocess_shell(
            command.replace("localmesh", LOCALMESH, 1), env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        async with asyncio.timeout(60):
            out, err = await process.communicate()
        assert process.returncode == 0, (command, err.decode())
        outputs.append(out.decode())
    listed = outputs[3].splitlines()
    assert [line.split()[1].rstrip(":") for line in listed] == ["error", "refuse", "drop_reply"]
    assert all(line.endswith("fired 0") for line in listed)
    assert [f.kind for f in localmesh_server.faults.all()] == ["refuse", "drop_reply"]  # 1 cleared


async def test_the_documented_admin_calls_are_served(localmesh_server) -> None:
    text = (Path(__file__).resolve().parents[2] / HARNESS_MD).read_text(encoding="utf-8")
    shown = set(re.findall(r"`((?:GET|POST|DELETE) /_localmesh/faults[^`]*)`", text))
    assert len(shown) == 5
    headers = {"authorization": f"Bearer {localmesh_server.api_key}"}
    async with httpx.AsyncClient(base_url=localmesh_server.url, headers=headers) as client:
        added = (await client.post(ADMIN_PATH, json={"kind": "refuse", "times": None})).json()
        order = [f"POST {ADMIN_PATH}", f"GET {ADMIN_PATH}", f"GET {ADMIN_PATH}/{{id}}",
                 f"DELETE {ADMIN_PATH}/{{id}}", f"DELETE {ADMIN_PATH}"]
        for call in order:
            method, path = call.split(" ")
            answer = await client.request(method, path.replace("{id}", str(added["id"])),
                                          json={"kind": "refuse"} if method == "POST" else None)
            assert answer.status_code in (200, 201, 204), (call, answer.text)
    assert shown == set(order)


# ---------------------------------------------------------------- LLM rules and checks


async def test_the_python_rule_example_runs(localmesh_server, localmesh_worker, localmesh_room) -> None:
    code = block(HARNESS_MD, "python", "def take_notes(request: LLMRequest)")
    test = define(code, run_until_drained=run_until_drained)["test_a_python_rule_drives_the_worker"]
    await test(localmesh_server, localmesh_worker, localmesh_room)


async def test_the_failure_report_shown_is_the_real_one() -> None:
    shown = [line.removeprefix("E").removeprefix("   ")
             for line in block(HARNESS_MD, "text", "ScriptFailed").splitlines()]
    assert shown[0].startswith("localmesh.scripted_llm.errors.ScriptFailed: ")
    shown[0] = shown[0].removeprefix("localmesh.scripted_llm.errors.ScriptFailed: ")
    player = ScriptPlayer(loads_script(
        "rules: [{expect: {tools: [storage.delete_file], instructions: Always be polite}}]"), room="test")
    storage = [{"type": "function", "name": n} for n in ("list_files_in_room", "write_file", "read_file")]
    request = {"model": "m", "input": "hi", "instructions": "You are a careful assistant. Always be brief.",
               "tools": [{"type": "namespace", "name": "storage", "tools": storage}]}
    with pytest.raises(ScriptedError):
        await player.respond(request)
    with pytest.raises(ScriptFailed) as raised:
        player.check()
    assert str(raised.value).splitlines() == shown


async def test_the_yaml_checks_in_the_harness_doc_behave() -> None:
    player = ScriptPlayer(loads_script(block(HARNESS_MD, "yaml", "tools_exactly"), "doc.yaml"))
    tools = [{"type": "namespace", "name": "storage", "tools": [
        {"type": "function", "name": "write_file"}, {"type": "function", "name": "read_file"}]}]
    first = await player.respond({"model": "m", "input": "hi", "instructions": "take notes", "tools": tools})
    assert first["output"][0]["name"] == "write_file"
    assert player.failures == []
    with pytest.raises(ScriptedError, match="instructions: expected to contain 'notes'"):
        await player.respond({"model": "m", "input": "hi", "tools": tools})


async def test_the_llm_doc_check_message_is_the_real_one() -> None:
    script = loads_script(block(LLM_MD, "yaml", "tools_exactly"), "doc.yaml")
    shown = block(LLM_MD, "text", "did not meet the expectations").rstrip("\n")
    tools = [{"type": "namespace", "name": "storage", "tools": [{"type": "function", "name": "read_file"}]}]
    reply = ScriptPlayer(script).play(
        {"model": "gpt-4.1", "input": "hi", "instructions": "You write poems.", "tools": tools})
    assert reply.error is not None and reply.error.message == shown


async def test_the_llm_doc_python_rules_example_runs() -> None:
    script = define(block(LLM_MD, "python", "rule(save, name="))["script"]
    assert [r.label for r in script.rules] == ["rules[0]", "save", "rules[2]"]
    player = ScriptPlayer(script)
    tools = [{"type": "namespace", "name": "storage", "tools": [{"type": "function", "name": "write_file"}]}]
    answer = await player.respond({"model": "m", "input": "save this", "tools": tools})
    assert answer["output"][0]["namespace"] == "storage"
    other = await player.respond({"model": "m", "input": "sing", "tools": tools})
    assert other["output"][0]["content"][0]["text"] == "I only save."
    assert len(blocks(LLM_MD, "python")) >= 1
