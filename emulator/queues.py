"""Queue semantics: FIFO per queue, one receiver per message, long-poll waiters in line.

What is known is answered from memory: which queues exist, how many messages each holds,
the next message id, and who waits. SQLite holds exactly the messages that are in line
(not handed to anyone); every change runs at once in the store's open batch, and a client
is answered only once its change is committed (``store.py``, group commit).

A send to a queue with a waiting receiver hands the message straight to the first live
waiter: nothing is written, since its insert and delete would cancel out in SQLite. A
receiver that took a message but cannot deliver it (its connection closed) puts it back at
its place in line: ids order the line, and the id stays with the message.

Everything that reads and changes this state runs without awaiting in between, on the
event loop's one thread, so no locks are needed and no wake-up can be lost: a receiver
either finds a message or is in line before the next send looks.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from localmesh.emulator.errors import QUEUE_NOT_FOUND, RoomError
from localmesh.emulator.namespaces import room_name
from localmesh.emulator.store import Committed, Store
from localmesh.protocol.wire import dumps_json

from .clock import Clock, WallClock

DEFAULT_LONG_POLL_WINDOW = 20.0

_QueueKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Taken:
    """A message taken from a queue: its id (its place in line) and its JSON text."""

    id: int
    body: str
    # The commit of its removal from SQLite (None: it never was there, a direct hand-off).
    # A receiver answers only after it, so a crash can never deliver one message twice.
    removed: Committed | None = None
    # Already written to the long-polling receiver it was handed to (``take``'s ``deliver``).
    delivered: bool = False


# Writes a long poll's reply as a message is handed to it; False: it cannot now.
Deliver = Callable[[Taken], bool]


class Queues:
    def __init__(
        self, store: Store, *, long_poll_window: float = DEFAULT_LONG_POLL_WINDOW,
        clock: Clock | None = None,
    ) -> None:
        self._store = store
        self.clock: Clock = clock or WallClock()  # long-poll windows run on it
        self.long_poll_window = long_poll_window
        self._sizes: dict[_QueueKey, int] = {}  # every known queue -> messages in line
        # Messages taken whose removal is not committed yet: they still count as queued (a
        # crash now would leave them in line), so a size never shows a message as gone
        # before its receiver can have it.
        self._removing: dict[_QueueKey, int] = {}
        self._last_id = 0
        # Each resolved with a message, or None when released (see ``release``).
        self._waiters: dict[_QueueKey, deque[asyncio.Future[Taken | None]]] = {}
        self._waiter_added = asyncio.Event()  # replaced each time it fires (test hook)
        # Waiters that can be answered from the hand-off itself (``take``'s ``deliver``).
        self._deliverers: dict[asyncio.Future[Taken | None], Deliver] = {}
        store.on_rollback(self.load)

    def load(self) -> None:
        """Read the queues, their sizes and the last message id from SQLite."""
        sizes = dict.fromkeys(self._store.all_queues(), 0)
        sizes.update(self._store.queue_sizes())
        self._sizes = sizes
        self._last_id = max(self._last_id, self._store.last_message_id())

    def _require(self, room: str, name: str, create: bool) -> tuple[_QueueKey, Committed | None]:
        key = (room, name)
        if key in self._sizes:
            return key, None
        if not create:
            raise RoomError(
                QUEUE_NOT_FOUND, f"queue {name!r} does not exist in room {room_name(room)!r}")
        created = self._store.create_queue(room, name)
        self._sizes[key] = 0
        return key, created

    async def list(self, room: str) -> list[tuple[str, int]]:
        return sorted((name, size + self._removing.get((r, name), 0))
                      for (r, name), size in self._sizes.items() if r == room)

    async def peek(self, room: str, name: str, *, offset: int = 0, limit: int = 100) -> list[tuple[int, Any]]:
        """Up to ``limit`` messages from place ``offset`` in line, as ``(id, message)``,
        without taking them: receivers still get every one, in order."""
        self._require(room, name, create=False)
        rows = self._store.peek(room, name, max(offset, 0), max(limit, 0))
        return [(message_id, json.loads(body)) for message_id, body in rows]

    async def open(self, room: str, name: str) -> None:
        _, created = self._require(room, name, create=True)
        if created is not None:
            await created

    async def restore(self, room: str, name: str, bodies: list[str]) -> None:
        """Create a queue holding ``bodies`` (JSON texts, in line order), as an import does;
        each gets a new id, in order."""
        key, _ = self._require(room, name, create=True)
        for body in bodies:
            self._last_id += 1
            self._hand_or_store(key, Taken(self._last_id, body))
        await self._store.committed()

    def size(self, room: str, name: str) -> int:
        key = (room, name)
        return self._sizes.get(key, 0) + self._removing.get(key, 0)

    async def send(
        self, room: str, name: str, message: Any, *, create: bool = True,
        accepted: Callable[[int], None] | None = None,
    ) -> int:
        """Queue ``message``; return its id once it is committed (or in a waiting receiver's
        hands). ``accepted(id)`` is told as the message gets its id, before a waiting receiver
        is handed it (so a timeline shows the send before the delivery)."""
        message_id, committed = self.send_now(room, name, message, create=create, accepted=accepted)
        if committed is not None:
            # Cancelled (the sender left): the message is queued or handed over regardless.
            await committed
        return message_id

    def send_now(
        self, room: str, name: str, message: Any, *, create: bool = True,
        accepted: Callable[[int], None] | None = None,
    ) -> tuple[int, Committed | None]:
        """``send`` without waiting: the message's id and the commit to wait for before
        telling the sender (None: it is already in a waiting receiver's hands)."""
        # ensure_ascii: a lone surrogate in a string stays a faithful \\ud800 escape.
        body = dumps_json(message)
        key, created = self._require(room, name, create)
        self._last_id += 1
        message_id = self._last_id
        if accepted is not None:
            accepted(message_id)
        committed = self._hand_or_store(key, Taken(message_id, body))
        return message_id, created if committed is None else committed

    def _hand_or_store(self, key: _QueueKey, taken: Taken) -> Committed | None:
        """Give ``taken`` to the first live waiter, else put it in line in SQLite."""
        waiters = self._waiters.get(key)
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():  # a receiver that gave up removes itself, but not at once
                deliver = self._deliverers.pop(waiter, None)
                if deliver is not None and taken.removed is None and deliver(taken):
                    taken = Taken(taken.id, taken.body, delivered=True)
                waiter.set_result(taken)
                return taken.removed if taken.removed is not None and not taken.removed.done() else None
        self._sizes[key] = self._sizes.get(key, 0) + 1
        return self._store.append(taken.id, key[0], key[1], taken.body)

    async def receive(
        self, room: str, name: str, *, create: bool = True, wait: bool = True,
        window: float | None = None,
    ) -> Any | None:
        """Pop the head message; with ``wait``, wait for one up to the long-poll window."""
        taken = await self.take(room, name, create=create, wait=wait, window=window)
        return None if taken is None else json.loads(taken.body)

    async def take(
        self, room: str, name: str, *, create: bool = True, wait: bool = True,
        window: float | None = None, deliver: Deliver | None = None,
    ) -> Taken | None:
        """Like ``receive``, but the raw message, so a caller that fails to deliver it can
        ``put_back_soon`` and the message keeps its place in line.

        ``deliver`` lets a long poll be answered as a send hands it a message, from the
        sender's callback, instead of a loop pass later from this one: it writes the reply
        and says whether it could. The message then comes back ``delivered``."""
        key, created = self._require(room, name, create)
        taken = self._pop(key)
        if taken is not None:
            await self._until_removed(key, taken)
            return taken
        if not wait:
            if created is not None:
                await created
            return None
        # In line before any await: a send that comes meanwhile finds this waiter. (A queue
        # created just now is committed long before the waiter gets an answer.)
        waiter: asyncio.Future[Taken | None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, deque()).append(waiter)
        if deliver is not None:
            self._deliverers[waiter] = deliver
        self._waiter_added.set()
        self._waiter_added = asyncio.Event()
        try:
            async with self.clock.timeout(self.long_poll_window if window is None else window):
                taken = await waiter
        except TimeoutError:
            # The window can close between a hand-off and our wake-up: the message is ours.
            if not waiter.done() or waiter.cancelled():
                return None
            taken = waiter.result()
        except asyncio.CancelledError:
            handed = None if not waiter.done() or waiter.cancelled() else waiter.result()
            if handed is not None and not handed.delivered:  # (a delivered one is the client's)
                self.put_back_soon(room, name, handed)
            raise
        finally:
            self._deliverers.pop(waiter, None)
            self._forget(key, waiter)
        if taken is not None:  # None: released
            await self._until_removed(key, taken)
        return taken

    def _pop(self, key: _QueueKey) -> Taken | None:
        """The head of an existing queue's line, its removal in the open batch."""
        if not self._sizes[key]:
            return None
        popped = self._store.pop(*key)
        if popped is None:
            self._sizes[key] = 0  # cannot happen; if it did, memory follows SQLite
            return None
        self._sizes[key] -= 1
        return Taken(*popped)

    def take_now(self, room: str, name: str) -> Taken | None:
        """The head of ``name``'s line if it has one now (None: empty or unknown, and then
        nothing is changed). Its removal counts as queued until ``removal_settled``: the
        caller delivers it once ``taken.removed`` is done, or puts it back."""
        key = (room, name)
        if not self._sizes.get(key):
            return None
        taken = self._pop(key)
        if taken is not None and taken.removed is not None:
            self._removing[key] = self._removing.get(key, 0) + 1
        return taken

    def removal_settled(self, room: str, name: str, taken: Taken) -> None:
        """``take_now``'s removal is committed (or failed): it no longer counts as queued."""
        if taken.removed is not None:
            self._removed((room, name))

    async def _until_removed(self, key: _QueueKey, taken: Taken) -> None:
        """Wait for the commit of ``taken``'s removal; a receiver cancelled meanwhile (its
        connection closed) takes nothing: the message goes back to its place."""
        if taken.removed is None or taken.removed.done():
            if taken.removed is not None:
                taken.removed.result()  # a rolled-back removal raises here
            return
        self._removing[key] = self._removing.get(key, 0) + 1
        try:
            await asyncio.shield(taken.removed)
        except asyncio.CancelledError:
            self._removed(key)  # before it is put back, which counts it in line again
            self.put_back_soon(*key, taken)
            raise
        except BaseException:
            self._removed(key)
            raise
        self._removed(key)

    def _removed(self, key: _QueueKey) -> None:
        left = self._removing.get(key, 0) - 1
        if left > 0:
            self._removing[key] = left
        else:
            self._removing.pop(key, None)

    def _forget(self, key: _QueueKey, waiter: asyncio.Future[Taken | None]) -> None:
        waiters = self._waiters.get(key)
        if waiters is None:
            return
        try:
            waiters.remove(waiter)
        except ValueError:
            pass  # already taken out of line by the send that served it
        if not waiters:
            del self._waiters[key]

    def put_back_soon(self, room: str, name: str, taken: Taken | tuple[int, str]) -> None:
        """Return a taken message to its place in line (or to the next waiter), at once."""
        if not isinstance(taken, Taken):
            taken = Taken(*taken)
        key = (room, name)
        if key not in self._sizes:
            return  # the queue was closed meanwhile: its messages went with it
        # Still being removed? Then the next receiver must wait for that removal's commit too.
        removed = taken.removed if taken.removed is not None and not taken.removed.done() else None
        self._hand_or_store(key, Taken(taken.id, taken.body, removed))

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
            if self.waiting(room, name) and not self.size(room, name):
                return
            await added.wait()

    async def drain(self, room: str, name: str) -> None:
        key, _ = self._require(room, name, create=False)
        self._sizes[key] = 0
        await self._store.drain(room, name)

    async def close(self, room: str, name: str) -> None:
        """Delete the queue and its messages; waiting receivers get nothing."""
        key, _ = self._require(room, name, create=False)
        del self._sizes[key]
        await self._store.delete_queue(room, name)

    def forget(self, rooms: Callable[[str], bool]) -> None:
        """Forget the queues of the rooms ``rooms`` picks, after their rows were deleted (a
        reset). Receivers still waiting keep waiting: a later send serves them."""
        self._sizes = {key: size for key, size in self._sizes.items() if not rooms(key[0])}

    async def settle(self) -> None:
        """Wait until every change made so far is committed (for shutdown and tests)."""
        await self._store.flushed()
