"""How many requests one connection may have in flight.

A client that pipelines thousands of requests would otherwise start them all at once and
put every one of them in the store's line ahead of other rooms' work. Here a connection
has ``max_active`` slots: when they are all taken the session stops reading its socket
until one frees, so the client's own TCP buffer, not the server, holds the backlog.

A long-poll that only waits for a message, and a stream that waits for the client's chunks,
give their slot back (``detach``) and count against ``max_waiting`` instead: many idle
receivers never block a connection's sends, and a stream never blocks the very reads that
bring its chunks.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

DEFAULT_MAX_ACTIVE = 32
DEFAULT_MAX_WAITING = 1024


class TooManyWaiting(Exception):
    """A connection asked for more waiting calls than it may hold."""


class InFlight:
    def __init__(self, max_active: int = DEFAULT_MAX_ACTIVE,
                 max_waiting: int = DEFAULT_MAX_WAITING) -> None:
        self.max_active = max_active
        self.max_waiting = max_waiting
        self.active = 0
        self.waiting = 0
        self._queued: deque[asyncio.Future[None]] = deque()  # ``acquire`` calls waiting
        # Told when a slot frees and nobody waits in ``acquire``: a reader that stopped on a
        # full ``try_acquire`` goes on.
        self.on_free: Callable[[], None] | None = None

    def try_acquire(self) -> Slot | None:
        """A slot now, or None when they are all taken (wait for ``on_free``)."""
        if self.active >= self.max_active or self._queued:
            return None
        self.active += 1
        return Slot(self)

    async def acquire(self) -> Slot:
        """Wait for a free slot (the caller stops reading meanwhile)."""
        slot = self.try_acquire()
        if slot is not None:
            return slot
        waiter = asyncio.get_running_loop().create_future()
        self._queued.append(waiter)
        try:
            await waiter  # resolved with the freed slot already counted for us
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._free_active()  # handed a slot as we were cancelled: pass it on
            else:
                self._queued.remove(waiter)
            raise
        return Slot(self)

    def _free_active(self) -> None:
        while self._queued:
            waiter = self._queued.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot goes to it, still counted active
                return
        self.active -= 1
        if self.on_free is not None:
            self.on_free()


class Slot:
    """One request's claim on its connection; released exactly once."""

    def __init__(self, owner: InFlight) -> None:
        self._owner = owner
        self._state = "active"

    def detach(self) -> None:
        """The call now only waits: free its active slot, count it as waiting."""
        if self._state != "active":
            return
        if self._owner.waiting >= self._owner.max_waiting:
            raise TooManyWaiting(
                f"this connection already has {self._owner.waiting} waiting calls"
                f" (limit {self._owner.max_waiting})"
            )
        self._owner._free_active()
        self._owner.waiting += 1
        self._state = "waiting"

    def release(self) -> None:
        if self._state == "active":
            self._owner._free_active()
        elif self._state == "waiting":
            self._owner.waiting -= 1
        self._state = "released"
