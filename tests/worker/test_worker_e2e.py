"""The Worker against the real emulator: tasks in, files out, errors survived, clean stops."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest

from localmesh.emulator import RoomServer
from localmesh.fixtures.llm import ScriptedLLMAdapter
from localmesh.worker import (
    Backoff,
    ChatContext,
    OpenAIResponsesAdapter,
    RequiredStorage,
    RoomClient,
    Worker,
)

SCRIPT = Path(__file__).parent / "scripts" / "worker.yaml"
TIMEOUT = 10.0


def make_worker(**options: Any) -> Worker:
    options.setdefault("llm_adapter", ScriptedLLMAdapter(SCRIPT))
    return Worker(
        queue="tasks",
        name="test-worker",
        requires=[RequiredStorage()],
        rules=["Process queued tasks and save results to storage."],
        backoff=Backoff(base=0.01, cap=0.05, rng=random.Random(7)),
        **options,
    )


async def read(room: RoomClient, path: str) -> str:
    return (await room.storage.download(path)).text


async def test_worker_writes_a_file_through_the_storage_tool(connect) -> None:
    worker_room, sender = await connect("worker"), await connect("sender")
    worker = make_worker()
    await worker.start(worker_room)
    await sender.queues.send("tasks", {"prompt": "Please write the report"})
    stats = await worker.wait_for(lambda s: s.processed == 1, TIMEOUT)
    await worker.stop()
    assert await read(sender, "out/report.txt") == "all good"
    assert (stats.failed, stats.receive_failures) == (0, 0)


async def test_worker_over_http_against_the_scripted_endpoint(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    async with RoomServer(long_poll_window=2.0, llm_script=SCRIPT) as server:
        token = server.mint_token(room="http-room", name="worker")
        async with RoomClient(server.url, "http-room", token) as room:
            # No API key: the worker's room token authenticates the LLM calls.
            worker = make_worker(
                llm_adapter=OpenAIResponsesAdapter(base_url=f"{server.url}/openai/v1")
            )
            await worker.start(room)
            await room.queues.send("tasks", {"prompt": "write the report"})
            await worker.wait_for(lambda s: s.handled == 1, TIMEOUT)
            await worker.stop()
            assert worker.stats.last_error is None
            assert await read(room, "out/report.txt") == "all good"


class StorageWorker(Worker):
    """The docs' pattern: put a file named by the message into the LLM's context."""

    async def append_message_context(
        self, *, room: RoomClient, message: Any, chat_context: ChatContext
    ) -> None:
        file = await room.storage.download(message["path"])
        chat_context.append_user_message(
            f"Summarise this file ({message['path']}):\n{file.text}"
        )


async def test_a_subclass_can_read_storage_into_the_context(connect) -> None:
    room = await connect("worker")
    await room.storage.upload("inbox/note.txt", b"secret-content")
    worker = StorageWorker(
        queue="tasks", requires=[RequiredStorage()], llm_adapter=ScriptedLLMAdapter(SCRIPT)
    )
    await worker.start(room)
    await room.queues.send("tasks", {"path": "inbox/note.txt"})
    await worker.wait_for(lambda s: s.handled == 1, TIMEOUT)
    await worker.stop()
    assert worker.stats.processed == 1
    assert await read(room, "out/summary.txt") == "the file held the secret"


async def test_a_failed_message_is_logged_and_the_next_one_processed(
    server, connect, room_name, caplog
) -> None:
    room = await connect("worker")
    worker = make_worker()
    await worker.start(room)
    await room.queues.send("tasks", {"prompt": "explode"})
    await room.queues.send("tasks", {"prompt": "write the report"})
    stats = await worker.wait_for(lambda s: s.handled == 2, TIMEOUT)
    await worker.stop()
    assert (stats.failed, stats.processed) == (1, 1)
    assert "scripted failure" in (stats.last_error or "")
    assert "failed to process a message" in caplog.text
    assert any("worker.error" in str(entry) for entry in server.developer_logs(room_name))
    assert await read(room, "out/report.txt") == "all good"


async def test_message_without_prompt_reaches_the_llm_as_json(connect) -> None:
    seen: list[str] = []

    class Recorder(Worker):
        async def process_message(self, *, chat_context, room, message, toolkits):
            await self.append_message_context(room=room, message=message, chat_context=chat_context)
            seen.append(chat_context.messages[-1]["content"])

    room = await connect("worker")
    worker = Recorder(queue="tasks")
    await worker.start(room)
    await room.queues.send("tasks", {"task": "x", "n": 1})
    await room.queues.send("tasks", {"prompt": "just this"})
    await worker.wait_for(lambda s: s.processed == 2, TIMEOUT)
    await worker.stop()
    assert seen == ['{"task": "x", "n": 1}', "just this"]


async def test_stop_lets_the_message_in_flight_finish(connect) -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    class Slow(Worker):
        async def process_message(self, **kwargs: Any) -> None:
            entered.set()
            await release.wait()

    room = await connect("worker")
    worker = Slow(queue="tasks")
    await worker.start(room)
    await room.queues.send("tasks", {"prompt": "one"})
    await room.queues.send("tasks", {"prompt": "two"})
    await asyncio.wait_for(entered.wait(), TIMEOUT)
    stopping = asyncio.create_task(worker.stop())
    await asyncio.sleep(0)  # let stop() start: it must now wait for the message
    assert not stopping.done()
    release.set()
    await asyncio.wait_for(stopping, TIMEOUT)
    assert worker.stats.processed == 1
    # The second message was not taken.
    assert await room.queues.receive("tasks", wait=False) == {"prompt": "two"}


async def test_stop_returns_promptly_during_a_long_poll(server, connect) -> None:
    server.long_poll_window = 60.0
    room = await connect("worker")
    worker = make_worker()
    await worker.start(room)
    await room.queues.list()  # the worker's long poll is now pending on the server
    await asyncio.wait_for(worker.stop(), 2.0)
    assert not worker.running
    # Whatever arrives next stays in the queue for the next receiver.
    await room.queues.send("tasks", {"prompt": "later"})
    assert await asyncio.wait_for(room.queues.receive("tasks"), TIMEOUT) == {"prompt": "later"}


async def test_the_worker_survives_a_dropped_connection(server, connect, room_name) -> None:
    fast = Backoff(base=0.01, cap=0.05, rng=random.Random(3))
    room = await connect("worker", reconnect_backoff=fast)
    sender = await connect("sender", reconnect_backoff=Backoff(base=0.01, cap=0.05))
    worker = make_worker()
    await worker.start(room)
    await sender.queues.send("tasks", {"prompt": "write the report"})
    await worker.wait_for(lambda s: s.processed == 1, TIMEOUT)
    await room.queues.list()  # the next long poll is pending
    await server.drop_connections(room_name)
    await asyncio.wait_for(sender.wait_connected(reconnects=1), TIMEOUT)
    for _ in range(3):
        await sender.queues.send("tasks", {"prompt": "write the report"})
    stats = await worker.wait_for(lambda s: s.processed == 4, TIMEOUT)
    await worker.stop()
    assert stats.receive_failures >= 1
    assert room.reconnects == 1
    assert await sender.queues.receive("tasks", wait=False) is None


@pytest.mark.parametrize("limit", [2])
async def test_max_messages_ends_the_loop(connect, limit: int) -> None:
    room = await connect("worker")
    for _ in range(3):
        await room.queues.send("tasks", {"prompt": "hello"})
    worker = make_worker(max_messages=limit)
    await worker.start(room)
    await asyncio.wait_for(worker.wait(), TIMEOUT)
    assert worker.stats.processed == limit
    assert [q.size for q in await room.queues.list()] == [1]


async def test_stop_when_idle_drains_the_queue_and_ends(connect) -> None:
    room = await connect("worker")
    for _ in range(2):
        await room.queues.send("tasks", {"prompt": "hello"})
    worker = make_worker(stop_when_idle=True)
    await worker.start(room)
    await asyncio.wait_for(worker.wait(), TIMEOUT)
    assert worker.stats.processed == 2
