"""The store's group commit, seen from a caller: when commit callbacks run, and when a batch
is committed as a socket read ends instead of on the next pass of the event loop."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator

import pytest_asyncio
import uvloop

from localmesh.emulator.store import Store


@pytest_asyncio.fixture
async def store() -> AsyncIterator[Store]:
    opened = await Store.open(None)
    try:
        yield opened
    finally:
        await opened.close()


async def test_after_commit_runs_in_the_commit_itself_before_a_future_callback(store: Store) -> None:
    order: list[str] = []
    committed = store.append(1, "r", "q", "{}")
    committed.add_done_callback(lambda _: order.append("future callback"))
    store.after_commit(committed, lambda: order.append("after_commit"))
    assert order == []  # nothing before the commit
    await store.flushed()
    await asyncio.sleep(0)  # one pass: the future's own callback has run too
    assert order == ["after_commit", "future callback"]
    assert committed.result() is None


async def test_after_commit_of_a_done_commit_runs_at_once(store: Store) -> None:
    committed = store.append(1, "r", "q", "{}")
    await committed
    ran: list[bool] = []
    store.after_commit(committed, lambda: ran.append(True))
    assert ran == [True]


async def test_a_failing_callback_does_not_keep_the_others_waiting(store: Store) -> None:
    ran: list[int] = []
    committed = store.append(1, "r", "q", "{}")
    store.after_commit(committed, lambda: 1 / 0)
    store.after_commit(committed, lambda: ran.append(2))
    await store.flushed()
    assert ran == [2]


async def test_a_rolled_back_batch_calls_back_after_the_rollback_listeners(store: Store) -> None:
    order: list[str] = []
    store.on_rollback(lambda: order.append("listener"))
    committed = store.append(1, "r", "q", "{}")
    store.after_commit(committed, lambda: order.append(
        f"callback sees {type(committed.exception()).__name__}"))
    try:  # the same id again: SQLite refuses it, and the batch is failed by hand
        store.append(1, "r", "q", "{}")
    except sqlite3.IntegrityError:
        store._fail_batch("a test rolled it back")
    assert order == ["listener"]  # the callback waits for the next pass: no re-entry
    await asyncio.sleep(0)
    assert order == ["listener", "callback sees StoreFailed"]


async def test_a_read_commits_as_it_ends_when_nothing_else_is_left_in_the_turn(store: Store) -> None:
    store.read_started()
    committed = store.append(1, "r", "q", "{}")
    store.append(2, "r", "q", "{}")
    assert not committed.done()  # no commit of its own scheduled meanwhile
    store.read_ended()
    assert committed.done() and store.commits == 1  # one commit for the read's writes
    store.read_started()
    store.read_ended()  # nothing written: nothing to commit
    assert store.commits == 1


async def test_a_read_commits_on_the_next_pass_while_other_callbacks_wait(store: Store) -> None:
    loop = asyncio.get_running_loop()
    store.read_started()
    committed = store.append(1, "r", "q", "{}")
    joined = loop.create_future()
    # Scheduled during the read: it runs first, and could still write into the batch.
    loop.call_soon(lambda: joined.set_result(committed.done()))
    store.read_ended()
    assert not committed.done()
    assert await joined is False
    await store.flushed()
    assert committed.done() and store.commits == 1


async def test_writes_outside_a_read_are_committed_on_the_next_pass(store: Store) -> None:
    committed = store.append(1, "r", "q", "{}")
    assert not committed.done()
    await asyncio.sleep(0)
    assert committed.done() and store.commits == 1


def test_on_uvloop_a_read_commits_on_the_next_pass_with_the_turns_other_reads() -> None:
    """uvloop cannot say that a turn is over: a read's batch waits for the next pass, where it
    is committed once for every read of the turn, and no later."""
    async def reads() -> None:
        store = await Store.open(None)
        try:
            store.read_started()
            first = store.append(1, "r", "q", "{}")
            store.read_ended()
            assert not first.done()  # nothing else is queued, but the loop cannot tell
            store.read_started()  # another connection's read in the same turn
            second = store.append(2, "r", "q", "{}")
            store.read_ended()
            await asyncio.sleep(0)  # the next pass
            assert first.done() and second.done() and store.commits == 1
        finally:
            await store.close()

    asyncio.run(reads(), loop_factory=uvloop.new_event_loop)
