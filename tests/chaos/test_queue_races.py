"""Queue races at the model level: cancellation mid-pop, lost wake-ups, close and drain.

Each test forces one interleaving deterministically (a hook on the store says when a pop
has started) or repeats a bounded race many times; the assertion is an invariant that
must hold whatever the timing: every message is delivered once or is still in the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
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
    """Wraps ``store.pop``: ``started`` is set once a pop's DELETE has run (its commit is
    then pending in the store's open batch)."""

    def __init__(self, store: Store) -> None:
        self.started = asyncio.Event()
        self._pop = store.pop
        store.pop = self.pop  # type: ignore[method-assign]

    def pop(self, room: str, queue: str):
        self.started.set()
        return self._pop(room, queue)


async def _yield(times: int) -> None:
    for _ in range(times):
        await asyncio.sleep(0)  # one turn of the loop: a cancellation point, not a wait


async def test_a_receiver_cancelled_while_its_pop_commits_takes_nothing():
    """A session closing cancels its receive; if that lands once the DELETE ... RETURNING
    ran but before its commit, the row is gone from the batch: it must come back."""
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


@pytest.mark.parametrize("turns", range(6))
async def test_a_receiver_cancelled_at_any_point_takes_nothing_or_delivers(turns: int):
    """Whatever turn of the loop the cancellation lands on, a receiver either returned the
    message (delivered) or took nothing: every message is delivered once or still in line."""
    store = await Store.open(None)
    queues = Queues(store)
    try:
        await queues.send("r", "q", {"n": 1})
        await queues.send("r", "q", {"n": 2})
        receiver = asyncio.create_task(queues.receive("r", "q", wait=False))
        await _yield(turns)
        receiver.cancel()
        try:
            got = [await receiver]
        except asyncio.CancelledError:
            got = []
        async with asyncio.timeout(BOUND):
            await queues.settle()
            assert got + await _remaining(queues, "r", "q") == [{"n": 1}, {"n": 2}]
    finally:
        await store.close()


@pytest.mark.parametrize("turns", range(6))
async def test_a_sender_cancelled_while_serving_a_waiter_loses_nothing(turns: int):
    """A send to a queue with a waiting receiver hands the message over; if the sender's
    session closes at any point once the send started, the message still reaches someone."""
    store = await Store.open(None)
    queues = Queues(store, long_poll_window=3.0)
    try:
        receiver = asyncio.create_task(queues.receive("r", "q"))
        async with asyncio.timeout(BOUND):
            await queues.until_waiting("r", "q")
        sender = asyncio.create_task(queues.send("r", "q", {"n": 1}))
        await _yield(turns)
        started = turns > 0  # a task cancelled before its first turn never ran
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
        if not started:
            receiver.cancel()
        async with asyncio.timeout(BOUND):
            got = await asyncio.gather(receiver, return_exceptions=True)
            await queues.settle()
        got = [g for g in got if isinstance(g, dict)]
        left = await _remaining(queues, "r", "q")
        assert got + left == ([{"n": 1}] if started else [])
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
