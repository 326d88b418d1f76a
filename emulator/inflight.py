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

DEFAULT_MAX_ACTIVE = 32
DEFAULT_MAX_WAITING = 1024


class TooManyWaiting(Exception):
    """A connection asked for more waiting calls than it may hold."""


class InFlight:
    def __init__(self, max_active: int = DEFAULT_MAX_ACTIVE,
                 max_waiting: int = DEFAULT_MAX_WAITING) -> None:
        self.max_active = max_active
        self.max_waiting = max_waiting
        self._active = asyncio.Semaphore(max_active)
        self.active = 0
        self.waiting = 0

    async def acquire(self) -> Slot:
        """Wait for a free slot (the caller stops reading meanwhile)."""
        await self._active.acquire()
        self.active += 1
        return Slot(self)

    def _free_active(self) -> None:
        self.active -= 1
        self._active.release()


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
