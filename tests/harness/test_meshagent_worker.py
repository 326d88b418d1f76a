"""The ``meshagent_worker`` fixture: the real SDK Worker, drained and stopped promptly."""

from __future__ import annotations

import time

import pytest

from localmesh.fixtures.worker import NotDrained

pytestmark = pytest.mark.compat

ECHO = """
rules:
  - name: save
    match: {tool_result: false, user: "(?i)note (\\\\d+)"}
    answer:
      calls:
        - {name: write_file, arguments: {path: notes.txt, text: "noted", overwrite: true}}
  - name: done
    match: {tool_result: {name: write_file}}
    answer: {text: saved}
"""


async def test_the_real_worker_drains_five_messages_and_stops_at_once(
    localmesh_server, meshagent_worker, localmesh_room
) -> None:
    assert localmesh_server.long_poll_window >= 20  # a stop that waited it out would show
    worker = await meshagent_worker.start(queue="jobs", llm=ECHO)
    room = await localmesh_room("test", name="sender")
    for i in range(5):
        await room.queues.send("jobs", {"prompt": f"note {i}"})
    await meshagent_worker.run_until_drained(worker)

    assert [q.size for q in await room.queues.list() if q.name == "jobs"] == [0]
    rules = [entry.rule for entry in localmesh_server.llm.transcript("test")]
    assert rules.count("save") == 5 and rules.count("done") == 5
    assert (await room.storage.download("notes.txt")).text == "noted"

    started = time.monotonic()
    await meshagent_worker.stop(worker)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, f"the real Worker took {elapsed:.2f} s to stop"


async def test_a_failed_message_makes_the_drain_fail(meshagent_worker, localmesh_room) -> None:
    from meshagent.agents.worker import Worker
    from meshagent.openai import OpenAIResponsesAdapter

    class Broken(Worker):
        async def process_message(self, **kwargs) -> None:
            raise RuntimeError("boom")

    worker = await meshagent_worker.start(Broken(queue="jobs", llm_adapter=OpenAIResponsesAdapter()))
    room = await localmesh_room("test", name="sender")
    await room.queues.send("jobs", {"prompt": "anything"})
    with pytest.raises(NotDrained, match="1 message.* failed in the real Worker"):
        await meshagent_worker.run_until_drained(worker)
    await room.queues.send("jobs", {"prompt": "again"})
    await meshagent_worker.run_until_drained(worker, allow_failures=True)
