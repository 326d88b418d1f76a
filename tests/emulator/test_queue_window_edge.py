"""A message handed to a receiver just as its long-poll window closes is never lost."""

from __future__ import annotations

import asyncio

from localmesh.emulator.queues import Queues
from localmesh.emulator.store import Store

ROUNDS = 1000


async def test_no_message_is_lost_at_the_edge_of_the_window():
    store = await Store.open(None)
    queues = Queues(store)
    try:
        delivered: list[int] = []
        for i in range(ROUNDS):
            # A window of one millisecond: the send lands just before, at, or after it closes.
            receiver = asyncio.create_task(queues.receive("r", "q", window=0.001))
            async with asyncio.timeout(5):
                await queues.until_waiting("r", "q")
            await queues.send("r", "q", {"i": i})
            async with asyncio.timeout(5):
                got = await receiver
                await queues.settle()
            if got is None:  # the window won: the message must still be in line
                got = await queues.receive("r", "q", wait=False)
            assert got == {"i": i}, f"round {i}: message lost or out of order: {got!r}"
            delivered.append(got["i"])
        assert delivered == list(range(ROUNDS))
        assert await queues.list("r") == [("q", 0)]
    finally:
        await store.close()
