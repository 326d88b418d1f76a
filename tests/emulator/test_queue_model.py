"""The ``Queues`` model against a plain-Python model: FIFO, exactly once, nothing lost.

Random interleavings of send, immediate receive, long-poll receive and receivers that
give up (before or after being handed a message) run against the real ``Queues`` on an
in-memory SQLite store.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from itertools import count

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from localmesh.emulator.errors import QUEUE_NOT_FOUND, RoomError
from localmesh.emulator.queues import Queues
from localmesh.emulator.store import Store

KEYS = [("a", "x"), ("a", "y"), ("b", "x")]  # (room, queue): room b's x is not room a's
TIMEOUT = 10.0

keys = st.sampled_from(range(len(KEYS)))
operations = st.lists(
    st.one_of(
        st.tuples(st.just("send"), keys, st.booleans()),  # bool: its receiver gives up
        st.tuples(st.just("receive_now"), keys),
        st.tuples(st.just("receive_wait"), keys),
        st.tuples(st.just("give_up"), keys, st.integers(0, 3)),
    ),
    max_size=40,
)


@dataclass
class Model:
    messages: dict[int, deque[int]] = field(default_factory=lambda: {k: deque() for k in
                                                                     range(len(KEYS))})
    waiters: dict[int, deque[asyncio.Task]] = field(default_factory=lambda: {k: deque() for k in
                                                                            range(len(KEYS))})


async def _run(ops) -> None:
    store = await Store.open(None)
    queues = Queues(store, long_poll_window=60)
    model = Model()
    serial = count()
    delivered: list[int] = []
    try:
        async with asyncio.timeout(TIMEOUT):
            for op in ops:
                kind, key = op[0], op[1]
                room, name = KEYS[key]
                if kind == "send":
                    n = next(serial)
                    await queues.send(room, name, {"n": n})
                    if not model.waiters[key]:
                        model.messages[key].append(n)
                        continue
                    first = model.waiters[key].popleft()
                    # handed the message, then its connection closed before it resumed
                    # (cancel() is False when it has already returned: a normal delivery)
                    if op[2] and first.cancel():
                        with pytest.raises(asyncio.CancelledError):
                            await first
                        await queues.settle()  # the message went back into line ...
                        if model.waiters[key]:  # ... and on to the next receiver in line
                            first = model.waiters[key].popleft()
                        else:
                            model.messages[key].append(n)
                            continue
                    assert await first == {"n": n}
                    delivered.append(n)
                elif kind == "receive_now":
                    got = await queues.receive(room, name, wait=False)
                    expected = model.messages[key].popleft() if model.messages[key] else None
                    assert got == (None if expected is None else {"n": expected})
                    if expected is not None:
                        delivered.append(expected)
                elif kind == "receive_wait":
                    task = asyncio.create_task(queues.receive(room, name, wait=True))
                    if model.messages[key]:
                        expected = model.messages[key].popleft()
                        assert await task == {"n": expected}
                        delivered.append(expected)
                    else:
                        model.waiters[key].append(task)
                        await queues.until_waiting(room, name, len(model.waiters[key]))
                elif kind == "give_up" and model.waiters[key]:
                    index = op[2] % len(model.waiters[key])
                    task = model.waiters[key][index]
                    del model.waiters[key][index]
                    task.cancel()
                    with pytest.raises(asyncio.CancelledError):
                        await task
                # the invariant the model relies on: receivers wait only on empty queues
                for k, (r, q) in enumerate(KEYS):
                    assert queues.waiting(r, q) == len(model.waiters[k])
                    assert not (model.waiters[k] and model.messages[k])

            for waiting in model.waiters.values():
                for task in waiting:
                    task.cancel()
                await asyncio.gather(*waiting, return_exceptions=True)
            await queues.settle()
            sizes = {room: dict(await queues.list(room)) for room in ("a", "b")}
            for key, (room, name) in enumerate(KEYS):
                left = []
                while (message := await queues.receive(room, name, wait=False)) is not None:
                    left.append(message["n"])
                assert left == list(model.messages[key]), "FIFO order or content differs"
                assert sizes[room].get(name, 0) == len(left)
                delivered.extend(left)
        assert sorted(delivered) == list(range(next(serial))), "lost or duplicated"
    finally:
        await store.close()


@settings(max_examples=150, deadline=None)
@given(operations)
def test_random_interleavings_keep_fifo_and_exactly_once(ops):
    asyncio.run(_run(ops))


def test_a_handed_message_goes_back_to_its_place_in_line():
    async def scenario() -> None:
        store = await Store.open(None)
        try:
            queues = Queues(store, long_poll_window=60)
            waiter = asyncio.create_task(queues.receive("r", "q"))
            await queues.until_waiting("r", "q")
            await queues.send("r", "q", {"n": 1})  # handed to the waiter ...
            waiter.cancel()  # ... which leaves before it can return it
            await queues.send("r", "q", {"n": 2})  # races the put-back
            with pytest.raises(asyncio.CancelledError):
                await waiter
            await queues.settle()
            assert await queues.receive("r", "q", wait=False) == {"n": 1}
            assert await queues.receive("r", "q", wait=False) == {"n": 2}
        finally:
            await store.close()

    asyncio.run(scenario())


def test_long_poll_window_expiry_answers_none_and_leaves_no_waiter():
    async def scenario() -> None:
        store = await Store.open(None)
        try:
            queues = Queues(store, long_poll_window=0.05)
            assert await queues.receive("r", "q") is None
            assert queues.waiting("r", "q") == 0
            await queues.send("r", "q", {"late": True})  # nobody takes it by mistake
            assert await queues.receive("r", "q", wait=False) == {"late": True}
        finally:
            await store.close()

    asyncio.run(scenario())


def test_missing_queue_without_create():
    async def scenario() -> None:
        store = await Store.open(None)
        try:
            queues = Queues(store)
            for call in (
                queues.send("r", "nope", {}, create=False),
                queues.receive("r", "nope", create=False, wait=False),
                queues.drain("r", "nope"),
                queues.close("r", "nope"),
            ):
                with pytest.raises(RoomError) as raised:
                    await call
                assert raised.value.code == QUEUE_NOT_FOUND
            assert await queues.list("r") == []
        finally:
            await store.close()

    asyncio.run(scenario())


def test_closed_queue_takes_its_messages_with_it():
    async def scenario() -> None:
        store = await Store.open(None)
        try:
            queues = Queues(store)
            await queues.send("r", "q", {"n": 1})
            await queues.close("r", "q")
            assert await queues.list("r") == []
            await queues.open("r", "q")
            assert await queues.receive("r", "q", wait=False) is None
        finally:
            await store.close()

    asyncio.run(scenario())


async def test_a_taken_message_counts_as_queued_until_its_removal_is_committed() -> None:
    store = await Store.open(None)
    try:
        queues = Queues(store)
        queues.load()
        await queues.send("a", "x", {"n": 1})
        # Runs at once up to its wait for the commit of the message's removal.
        taking = asyncio.Task(queues.take("a", "x", wait=False), loop=asyncio.get_running_loop(),
                              eager_start=True)
        assert not taking.done()
        # A crash now would leave the message in line, so sizes still show it.
        assert queues.size("a", "x") == 1 and await queues.list("a") == [("x", 1)]
        async with asyncio.timeout(TIMEOUT):
            taken = await taking
        assert taken is not None and taken.body == '{"n": 1}'
        assert queues.size("a", "x") == 0 and await queues.list("a") == [("x", 0)]
    finally:
        await store.close()


async def test_take_now_counts_as_queued_until_its_removal_is_committed_and_can_go_back() -> None:
    store = await Store.open(None)
    try:
        queues = Queues(store)
        queues.load()
        for n in (1, 2):
            await queues.send("a", "x", {"n": n})
        taken = queues.take_now("a", "x")
        assert taken is not None and taken.removed is not None and not taken.removed.done()
        assert queues.size("a", "x") == 2  # not gone before its removal is on disk
        await taken.removed
        queues.removal_settled("a", "x", taken)
        assert queues.size("a", "x") == 1
        queues.put_back_soon("a", "x", taken)  # the reply could not be delivered
        assert queues.size("a", "x") == 2
        got = [await queues.receive("a", "x", wait=False) for _ in range(2)]
        assert got == [{"n": 1}, {"n": 2}]  # back in its place: first in line
        assert queues.take_now("a", "x") is None  # empty: nothing taken, nothing changed
        assert queues.take_now("a", "nowhere") is None and queues.size("a", "nowhere") == 0
    finally:
        await store.close()
