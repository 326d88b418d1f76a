"""Queue semantics: FIFO per queue, one receiver per message, long-poll waiters in line.

Waiting receivers are woken in process, never by polling the database. A send commits
the message, then hands the head of the queue to the first live waiter. A receiver that
is cancelled (its connection closed) after being handed a message puts it back in its
place, so a departed receiver takes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Coroutine
from typing import Any, TypeVar

from localmesh.emulator.errors import QUEUE_NOT_FOUND, RoomError
from localmesh.emulator.store import Store

from .clock import Clock, WallClock

DEFAULT_LONG_POLL_WINDOW = 20.0

_QueueKey = tuple[str, str]
_T = TypeVar("_T")


class Queues:
    def __init__(
        self, store: Store, *, long_poll_window: float = DEFAULT_LONG_POLL_WINDOW,
        clock: Clock | None = None,
    ) -> None:
        self._store = store
        self.clock: Clock = clock or WallClock()  # long-poll windows run on it
        self.long_poll_window = long_poll_window
        self._known: set[_QueueKey] = set()
        self._waiters: dict[_QueueKey, deque[asyncio.Future[tuple[int, str] | None]]] = {}
        self._locks: dict[_QueueKey, asyncio.Lock] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._waiter_added = asyncio.Event()  # replaced each time it fires (test hook)

    async def load(self) -> None:
        self._known = set(await self._store.all_queues())

    def _lock(self, key: _QueueKey) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    async def _require(self, room: str, name: str, create: bool) -> _QueueKey:
        key = (room, name)
        if key not in self._known:
            if not create:
                raise RoomError(QUEUE_NOT_FOUND, f"queue {name!r} does not exist in room {room!r}")
            await self._store.create_queue(room, name)
            self._known.add(key)
        return key

    async def list(self, room: str) -> list[tuple[str, int]]:
        sizes = await self._store.queue_sizes(room)
        names = {name for r, name in self._known if r == room}
        return [(name, sizes.get(name, 0)) for name in sorted(names | set(sizes))]

    async def peek(self, room: str, name: str, *, offset: int = 0, limit: int = 100) -> list[tuple[int, Any]]:
        """Up to ``limit`` messages from place ``offset`` in line, as ``(id, message)``,
        without taking them: receivers still get every one, in order."""
        await self._require(room, name, create=False)
        rows = await self._store.peek(room, name, max(offset, 0), max(limit, 0))
        return [(message_id, json.loads(body)) for message_id, body in rows]

    async def open(self, room: str, name: str) -> None:
        await self._require(room, name, create=True)

    async def send(self, room: str, name: str, message: Any, *, create: bool = True) -> None:
        """Commit ``message`` to the queue; return once it is on disk."""
        key = await self._require(room, name, create)
        try:
            await self._store.append(room, name, json.dumps(message))  # ASCII: lone surrogates stay escaped
        except asyncio.CancelledError:
            # The sender's session closed, but SQLite commits the row anyway: its waiters
            # must still be served (the serve's pop runs after the append, in SQLite's order).
            self._serve_soon(key)
            raise
        await self._serve_waiters(key)

    async def _serve_waiters(self, key: _QueueKey) -> None:
        lock = self._lock(key)
        # A receiver holding the lock may have found the queue empty just before our message
        # was committed, and be about to wait: wait for the lock, or it waits out its window.
        if not self._waiters.get(key) and not lock.locked():
            return
        try:
            async with lock:
                waiters = self._waiters.get(key)
                while waiters:
                    # Receivers remove themselves (in their own task) when they give up, so
                    # pick the first live one afresh each time, never assume it is still there.
                    waiter = next((w for w in waiters if not w.done()), None)
                    if waiter is None:
                        return
                    popped = await self._pop_for(key)
                    if popped is None:
                        return
                    if waiter.done():  # gave up while we were popping: keep it in line
                        await self._store.put_back(*key, *popped)
                        continue
                    waiter.set_result(popped)
                    waiters.remove(waiter)
        except asyncio.CancelledError:
            # The sender left (its session closed); the waiters are still owed the messages.
            self._serve_soon(key)
            raise

    async def receive(
        self, room: str, name: str, *, create: bool = True, wait: bool = True,
        window: float | None = None,
    ) -> Any | None:
        """Pop the head message; with ``wait``, wait for one up to the long-poll window."""
        taken = await self.take(room, name, create=create, wait=wait, window=window)
        return None if taken is None else json.loads(taken[1])

    async def take(
        self, room: str, name: str, *, create: bool = True, wait: bool = True,
        window: float | None = None,
    ) -> tuple[int, str] | None:
        """Like ``receive``, but the raw ``(id, body)``, so a caller that fails to deliver
        it can ``put_back_soon`` and the message keeps its place in line."""
        key = await self._require(room, name, create)
        waiters = self._waiters.setdefault(key, deque())
        async with self._lock(key):
            # Waiters only exist while the queue is empty, so skip the trip when there are some.
            if not any(not w.done() for w in waiters):
                popped = await self._pop_for(key)
                if popped is not None:
                    return popped
            if not wait:
                return None
            # resolved with a message, or None when released (see release)
            waiter: asyncio.Future[tuple[int, str] | None] = asyncio.get_running_loop().create_future()
            waiters.append(waiter)
            self._waiter_added.set()
            self._waiter_added = asyncio.Event()
        try:
            async with self.clock.timeout(self.long_poll_window if window is None else window):
                return await waiter
        except TimeoutError:
            # The window can close between a hand-off and our wake-up: the message is ours.
            if waiter.done() and not waiter.cancelled():
                return waiter.result()
            return None
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.result() is not None:
                self.put_back_soon(room, name, waiter.result())
            raise
        finally:
            if waiter in waiters:
                waiters.remove(waiter)

    async def _pop_for(self, key: _QueueKey) -> tuple[int, str] | None:
        """``store.pop`` for a receiver that may be cancelled (its session closing) meanwhile.

        The DELETE runs in SQLite's thread whether or not anyone waits for it, so a cancelled
        receiver puts the row back before it lets go of the queue's lock: it takes nothing,
        and the message keeps its place in line.
        """
        pop = self._in_background(self._store.pop(*key))
        try:
            return await asyncio.shield(pop)
        except asyncio.CancelledError:
            async def restore() -> None:
                popped = await pop
                if popped is not None:
                    await self._put_back(key, popped)

            with contextlib.suppress(asyncio.CancelledError):  # cancelled twice: it goes on alone
                await asyncio.shield(self._in_background(restore()))
            raise

    def _serve_soon(self, key: _QueueKey) -> None:
        self._in_background(self._serve_waiters(key))

    def _in_background(self, coroutine: Coroutine[Any, Any, _T]) -> asyncio.Task[_T]:
        """Run ``coroutine`` as a task of its own, which ``settle`` waits for."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _put_back(self, key: _QueueKey, popped: tuple[int, str]) -> None:
        """Return a taken message to its place, then serve whoever waits for it (once the
        queue's lock is free: the caller may hold it)."""
        await self._store.put_back(*key, *popped)
        self._serve_soon(key)

    def put_back_soon(self, room: str, name: str, popped: tuple[int, str]) -> None:
        """``_put_back`` in a task of its own: callers are usually being cancelled."""
        self._in_background(self._put_back((room, name), popped))

    def release(self, room: str, name: str) -> int:
        """End every long poll waiting on ``name`` now, empty-handed, as if its window had
        closed; the number released. The harness stops workers promptly with it."""
        released = 0
        for waiter in self._waiters.get((room, name), ()):
            if not waiter.done():
                waiter.set_result(None)
                released += 1
        return released

    def waiting(self, room: str, name: str) -> int:
        """How many receivers are long-polling ``name`` now."""
        return sum(not w.done() for w in self._waiters.get((room, name), ()))

    async def until_waiting(self, room: str, name: str, count: int = 1) -> None:
        """Return once ``count`` receivers are long-polling ``name`` (for tests)."""
        while self.waiting(room, name) < count:
            await self._waiter_added.wait()

    async def until_idle(self, room: str, name: str) -> None:
        """Return once ``name`` is empty and a receiver is long-polling it again (for tests: a
        worker that polls again has handled everything it took)."""
        while True:
            added = self._waiter_added  # set when the next waiter arrives
            if self.waiting(room, name) and not (await self._store.queue_sizes(room)).get(name):
                return
            await added.wait()

    async def drain(self, room: str, name: str) -> None:
        await self._require(room, name, create=False)
        await self._store.drain(room, name)

    async def close(self, room: str, name: str) -> None:
        """Delete the queue and its messages; waiting receivers get nothing."""
        key = await self._require(room, name, create=False)
        await self._store.delete_queue(room, name)
        self._known.discard(key)

    async def settle(self) -> None:
        """Wait for put-backs still in flight (for shutdown and tests)."""
        # Only the unfinished ones: a finished task leaves the set in a callback that has not
        # run yet, and awaiting finished tasks does not yield, so that loop would never end.
        while pending := {task for task in self._background if not task.done()}:
            await asyncio.wait(pending)
