"""Parity: the real MeshAgent Worker and our Worker, given the same task and the same LLM script,
leave the same files in room storage (same paths, same bytes) and have their LLM requests
answered by the same script rules, turn for turn.

The real side: ``meshagent.agents.worker.Worker`` with the real ``StorageToolkit`` (mounted on the
room root) and the real ``OpenAIResponsesAdapter`` (its default websocket mode), pointed at the
emulator through the environment, as a user would. Our side: ``worker.Worker`` with our
``StorageToolkit`` and our ``OpenAIResponsesAdapter`` (HTTP ``POST``) against the same endpoint.
Each runs in its own room; both rooms get the same script.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from meshagent.agents.worker import Worker as RealWorker
from meshagent.openai import OpenAIResponsesAdapter as RealOpenAIResponsesAdapter
from meshagent.tools.storage import StorageToolkit as RealStorageToolkit
from meshagent.tools.storage import StorageToolRoomMount

from localmesh.emulator import RoomServer
from localmesh.fixtures.sdk import connect_meshagent_room
from localmesh.fixtures.worker import run_until_drained
from localmesh.scripted_llm import Script, load_demo_script, loads_script
from localmesh.worker import OpenAIResponsesAdapter, RequiredStorage, RoomClient, Worker

pytestmark = [
    pytest.mark.compat,
    pytest.mark.localmesh_only(reason="the scripted LLM, and localmesh's own Worker"),
]

TIMEOUT = 20.0
RULES = ["Process queued tasks and save results to storage."]

TWO_FILES = """
description: writes two files, one in a subfolder, then answers
rules:
  - name: write-summary
    match: {user: "(?i)summary", turn: 1}
    answer:
      calls:
        - namespace: storage
          name: write_file
          arguments:
            path: /reports/2024/summary.md
            text: "# Summary\\n\\nNaïve café, ünïcödé and emoji 🚀 survive.\\n"
            overwrite: false
  - name: write-index
    match: {turn: 2, tool_result: {name: write_file, output: "(?i)saved"}}
    answer:
      calls:
        - namespace: storage
          name: write_file
          arguments: {path: index.txt, text: "reports/2024/summary.md", overwrite: true}
  - name: finished
    match: {turn: 3, tool_result: {name: write_file, output: "(?i)saved"}}
    answer: {text: "Wrote reports/2024/summary.md and index.txt."}
  - name: failed
    match: {tool_result: true}
    answer: {text: "A tool failed."}
"""

SCENARIOS = {  # name: (script, task, the files it must leave)
    "demo": (
        load_demo_script,
        {"prompt": "Write a poem about AI and save it to poem.txt"},
        {"poem.txt"},
    ),
    "two-files": (
        lambda: loads_script(TWO_FILES, "two-files"),
        {"prompt": "Write the summary"},
        {"reports/2024/summary.md", "index.txt"},
    ),
}


class ObservedRealWorker(RealWorker):
    """The real Worker, unchanged but for a signal once a message is processed."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.processed = asyncio.Event()

    async def process_message(self, **kwargs: Any) -> Any:
        try:
            return await super().process_message(**kwargs)
        finally:
            self.processed.set()


async def run_real_worker(server: RoomServer, room_name: str, task: dict[str, Any]) -> None:
    token = server.mint_token(room=room_name, name="worker")
    async with connect_meshagent_room(server.room_url(room_name), token) as room:
        worker = ObservedRealWorker(
            queue="tasks",
            name="worker",
            llm_adapter=RealOpenAIResponsesAdapter(),
            toolkits=[RealStorageToolkit(mounts=[StorageToolRoomMount(path="/", room=room)])],
            rules=RULES,
        )
        await worker.start(room=room)
        try:
            await room.queues.send(name="tasks", message=task)
            await asyncio.wait_for(worker.processed.wait(), TIMEOUT)
        finally:
            await asyncio.wait_for(worker.stop(), TIMEOUT)  # ends with the pending long poll


async def run_our_worker(server: RoomServer, room_name: str, task: dict[str, Any]) -> None:
    token = server.mint_token(room=room_name, name="worker")
    async with RoomClient(server.url, room_name, token) as room:
        worker = Worker(
            queue="tasks",
            name="worker",
            requires=[RequiredStorage()],
            llm_adapter=OpenAIResponsesAdapter(),  # {MESHAGENT_API_URL}/openai/v1, room token
            rules=RULES,
        )
        await worker.start(room)
        try:
            await room.queues.send("tasks", task)
            stats = await run_until_drained(worker, server, timeout=TIMEOUT)
        finally:
            await worker.stop()
        assert (stats.processed, stats.failed) == (1, 0), stats.last_error


async def storage_tree(server: RoomServer, room_name: str) -> dict[str, bytes]:
    """Every file of the room: path -> bytes."""
    token = server.mint_token(room=room_name, name="reader")
    files: dict[str, bytes] = {}
    async with RoomClient(server.url, room_name, token) as room:

        async def walk(folder: str) -> None:
            for entry in await room.storage.list(folder):
                path = f"{folder}/{entry.name}" if folder else entry.name
                if entry.is_folder:
                    await walk(path)
                else:
                    files[path] = (await room.storage.download(path)).data

        await walk("")
    return files


@pytest.fixture
def server(localmesh_server: RoomServer, monkeypatch: pytest.MonkeyPatch) -> RoomServer:
    localmesh_server.long_poll_window = 0.3  # the real Worker's stop() waits out its long poll
    for name, value in localmesh_server.env().items():
        monkeypatch.setenv(name, value)
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_MODEL", "MESHAGENT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return localmesh_server


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
async def test_real_and_our_worker_leave_the_same_files(server: RoomServer, scenario: str) -> None:
    make_script, task, expected_paths = SCENARIOS[scenario]
    real_room, our_room = f"real-{scenario}", f"ours-{scenario}"
    script: Script = make_script()
    server.llm.set_script(real_room, script)
    server.llm.set_script(our_room, script)

    await run_real_worker(server, real_room, task)
    await run_our_worker(server, our_room, task)

    real_files = await storage_tree(server, real_room)
    our_files = await storage_tree(server, our_room)
    assert set(real_files) == expected_paths  # so that nothing written on both sides cannot pass
    assert our_files == real_files

    real_turns = [(e.turn, e.rule) for e in server.llm.transcript(real_room)]
    our_turns = [(e.turn, e.rule) for e in server.llm.transcript(our_room)]
    assert our_turns == real_turns
    assert real_turns[-1][1] in ("poem-saved", "finished")
    # The real adapter speaks websocket mode and ours POST: the same rules answered both.
    assert {e.transport for e in server.llm.transcript(real_room)} == {"websocket"}
    assert {e.transport for e in server.llm.transcript(our_room)} == {"request"}

