"""The real MeshAgent ``Worker``, unmodified, on the emulator with the scripted LLM.

The SDK's own pieces end to end: ``meshagent.agents.worker.Worker`` takes a task from its
queue, the real ``OpenAIResponsesAdapter`` finds ``{MESHAGENT_API_URL}/openai/v1`` from the
environment (the participant token is its API key), the demo script answers with a
``write_file`` call, and the real ``StorageToolkit`` writes the file into room storage.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Literal

import pytest
from compat_helpers import file_written, wait_for_transcript
from meshagent.agents.worker import Worker
from meshagent.api import RoomClient
from meshagent.openai import OpenAIResponsesAdapter
from meshagent.tools.storage import StorageToolkit, StorageToolRoomMount

from localmesh.emulator import RoomServer
from localmesh.scripted_llm import load_demo_script, loads_script

pytestmark = [pytest.mark.compat, pytest.mark.localmesh_only(reason="the scripted LLM")]

ROOM = "worker-room"
QUEUE = "worker-jobs"
PROMPT_TEXT = "save a poem about ai to poem.txt"
RULES = ["You are the localmesh test worker.", "Save what you are asked for to room storage."]
PROMPT = 20.0  # an LLM round trip, two tool calls and a storage write: far below this on 127.0.0.1
STOP = 10.0  # worker.stop() waits for one long-poll window (0.3 s here) at most

DEMO = load_demo_script()
POEM = DEMO.rules[0].answer.calls[0].arguments["text"]
CALL_ID = "call_save-poem_1"


@asynccontextmanager
async def running_worker(room: RoomClient, *, mode: str = "websocket") -> AsyncIterator[Worker]:
    """The real Worker started on ``room``; stopped (and checked to stop) on the way out."""
    # The default adapter is websocket mode; request mode is asked for the way a user would.
    adapter = OpenAIResponsesAdapter() if mode == "websocket" else OpenAIResponsesAdapter(mode="request")
    worker = Worker(
        queue=QUEUE,
        llm_adapter=adapter,
        toolkits=[StorageToolkit(mounts=[StorageToolRoomMount(path="/", room=room)])],
        rules=RULES,
    )
    async with asyncio.timeout(PROMPT):
        await worker.start(room=room)
    try:
        yield worker
    finally:
        async with asyncio.timeout(STOP):
            await worker.stop()


Mode = Literal["websocket", "request"]


@pytest.mark.usefixtures("sdk_env")
@pytest.mark.parametrize("mode", ["websocket", "request"])
async def test_the_real_worker_saves_the_demo_poem(
    server: RoomServer, client: Callable[..., RoomClient], mode: Mode
) -> None:
    async with client(ROOM, name="worker") as room, running_worker(room, mode=mode):
        async with client(ROOM, name="sender") as sender:
            text = await file_written(
                sender, "poem.txt",
                lambda: sender.queues.send(name=QUEUE, message={"prompt": PROMPT_TEXT}, create=True),
            )
            assert text == POEM
            entries = await wait_for_transcript(server, ROOM, 2)

    first, second = entries
    assert [(e.rule, e.turn, e.conversation) for e in entries] == [
        ("save-poem", 1, "conv_0001"),
        ("poem-saved", 2, "conv_0001"),
    ]
    assert {e.transport for e in entries} == {mode}
    # The worker's rules reach the model as instructions, the queued prompt as the user message.
    assert first.request["instructions"] == "\n".join(RULES)
    user_messages = [i for i in first.request["input"] if i.get("role") == "user"]
    assert PROMPT_TEXT in str(user_messages[-1]["content"])
    call = first.response["output"][0]
    assert (call["type"], call["call_id"], call["name"]) == ("function_call", CALL_ID, "write_file")
    # The real StorageToolkit's answer goes back with the scripted call's id.
    outputs = [i for i in second.request["input"] if i.get("type") == "function_call_output"]
    assert len(outputs) == 1
    assert outputs[0]["call_id"] == CALL_ID
    assert "the file was saved" in str(outputs[0]["output"])
    if mode == "websocket":  # the adapter chains its socket turns instead of resending the input
        assert second.request["previous_response_id"] == first.response["id"]
    assert second.response["output"][0]["content"][0]["text"] == "I saved a poem about AI to poem.txt."


# A 400 worded as OpenAI words one. Over HTTP the adapter never retries a 400; over its websocket
# it retries every error event (ten times, for minutes) unless the message names a bad parameter.
FAILING_FIRST = """
description: the LLM refuses the first task, then saves a file for the next one
rules:
  - name: refuse
    times: once
    answer:
      error:
        status: 400
        message: "Unsupported parameter: 'temperature' is not supported with this model (scripted)"
  - name: save
    match:
      tool_result: false
    answer:
      calls:
        - namespace: storage
          name: write_file
          arguments: {path: second.txt, text: second task, overwrite: true}
  - name: saved
    match:
      tool_result: {name: write_file}
    answer:
      text: saved second.txt
"""


@pytest.mark.usefixtures("sdk_env")
@pytest.mark.parametrize("mode", ["websocket", "request"])
async def test_the_real_worker_logs_an_llm_400_and_takes_the_next_task(
    server: RoomServer, client: Callable[..., RoomClient], caplog: pytest.LogCaptureFixture, mode: Mode
) -> None:
    server.llm.set_script(ROOM, loads_script(FAILING_FIRST, "failing-first.yaml"))
    caplog.set_level(logging.ERROR, logger="worker")
    async with client(ROOM, name="worker") as room, running_worker(room, mode=mode):
        async with client(ROOM, name="sender") as sender:
            await sender.queues.send(name=QUEUE, message={"prompt": "first task"}, create=True)
            await wait_for_transcript(server, ROOM, 1)
            text = await file_written(
                sender, "second.txt",
                lambda: sender.queues.send(name=QUEUE, message={"prompt": "second task"}, create=True),
            )
            assert text == "second task"
            await wait_for_transcript(server, ROOM, 3)

    entries = server.llm.transcript(ROOM)
    assert [(e.rule, e.error is not None) for e in entries] == [
        ("refuse", True), ("save", False), ("saved", False),
    ]
    assert entries[0].error["status"] == 400  # type: ignore[index]
    # The Worker's own log: one failure, the first task's, with the LLM's message.
    errors = [r.getMessage() for r in caplog.records if r.name == "worker" and r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].startswith("Failed to process worker message")
    assert "'temperature' is not supported with this model (scripted)" in errors[0]
    assert "prompt='first task'" in errors[0]
