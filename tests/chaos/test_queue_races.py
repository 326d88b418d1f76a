"""Queue races at the model level: cancellation mid-pop, lost wake-ups, close and drain.

Each test forces one interleaving deterministically (a hook on the store says when a pop
has started) or repeats a bounded race many times; the assertion is an invariant that
must hold whatever the timing: every message is delivered once or is still in the queue.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from localmesh.emulator.queues import Queues
from localmesh.emulator.store import Store

pytestmark = pytest.mark.slow

BOUND = 10.0


async def _remaining(queues: Queues, room: str, name: str) -> list:
    out = []
    while (got := await queues.receive(room, name, wait=False, create=True)) is not None:
        out.append(got)
    return out


class PopHook:
    """Wraps ``store.pop``: ``started`` is set once a pop is on its way to SQLite."""

    def __init__(self, store: Store) -> None:
        self.started = asyncio.Event()
        self._pop = store.pop
        store.pop = self.pop  # type: ignore[method-assign]

    async def pop(self, room: str, queue: str):
        self.started.set()
        return await self._pop(room, queue)


async def test_a_receiver_cancelled_while_its_pop_runs_takes_nothing():
    """A session closing cancels its receive; if that lands while the DELETE ... RETURNING
    is in SQLite's thread, the row is gone either way: it must come back."""
    store = await Store.open(None)
    queues = Queues(store)
    try:
        await queues.send("r", "q", {"n": 1})
        await queues.send("r", "q", {"n": 2})
        hook = PopHook(store)
        receiver = asyncio.create_task(queues.receive("r", "q", wait=False))
        async with asyncio.timeout(BOUND):
            await hook.started.wait()
        receiver.cancel()
        with pytest.raises(asyncio.CancelledError):
            await receiver
        async with asyncio.timeout(BOUND):
            await queues.settle()
            assert await _remaining(queues, "r", "q") == [{"n": 1}, {"n": 2}]
    finally:
        await store.close()


async def test_a_sender_cancelled_while_serving_a_waiter_loses_nothing():
    """A send is committed, then serves the waiting receiver; if the sender's session
    closes while that pop is in SQLite, the message must still reach someone."""
    store = await Store.open(None)
    queues = Queues(store, long_poll_window=3.0)
    try:
        receiver = asyncio.create_task(queues.receive("r", "q"))
        async with asyncio.timeout(BOUND):
            await queues.until_waiting("r", "q")
        hook = PopHook(store)
        sender = asyncio.create_task(queues.send("r", "q", {"n": 1}))
        async with asyncio.timeout(BOUND):
            await hook.started.wait()
        sender.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sender
        async with asyncio.timeout(BOUND):
            got = await receiver
            await queues.settle()
        left = await _remaining(queues, "r", "q")
        assert ([got] if got is not None else []) + left == [{"n": 1}]
    finally:
        await store.close()


async def test_a_receiver_that_arrives_with_a_send_is_woken():
    """A receiver whose (empty) pop runs just before a send commits must not then wait out
    the whole long-poll window with the message sitting in the queue."""
    store = await Store.open(None)
    queues = Queues(store, long_poll_window=30.0)
    try:
        for i in range(100):
            receiver = asyncio.create_task(queues.receive("r", "q"))
            sender = asyncio.create_task(queues.send("r", "q", {"i": i}))
            # Far below the window: a lost wake-up shows as a timeout here.
            async with asyncio.timeout(BOUND):
                got = await receiver
                await sender
            assert got == {"i": i}, f"round {i}: {got!r}"
        assert await queues.list("r") == [("q", 0)]
    finally:
        await store.close()


async def test_close_while_receivers_wait_and_drain_racing_sends():
    """``close`` with receivers waiting ends nothing badly; ``drain`` racing sends leaves
    only messages sent after it started (each at most once)."""
    store = await Store.open(None)
    queues = Queues(store, long_poll_window=0.05)
    rng = random.Random(7)
    try:
        await queues.open("r", "q")
        waiting = [asyncio.create_task(queues.receive("r", "q")) for _ in range(5)]
        async with asyncio.timeout(BOUND):
            await queues.until_waiting("r", "q", 5)
        await queues.close("r", "q")
        async with asyncio.timeout(BOUND):
            results = await asyncio.gather(*waiting)
        assert results == [None] * 5
        assert await queues.list("r") == []

        await queues.open("r", "q")
        for round_ in range(20):
            sent = list(range(round_ * 100, round_ * 100 + rng.randint(5, 30)))
            sends = [asyncio.create_task(queues.send("r", "q", i)) for i in sent]
            drain = asyncio.create_task(queues.drain("r", "q"))
            async with asyncio.timeout(BOUND):
                await asyncio.gather(*sends, drain)
            left = await _remaining(queues, "r", "q")
            # whatever survived the drain is a subset of what was sent, once each, in order
            assert left == sorted(set(left)) and set(left) <= set(sent)
    finally:
        await store.close()
