"""The one clock the emulator's timers read: long-poll windows, token expiry, timestamps.

Outside tests it is the wall clock (``WallClock``: ``time.time`` and asyncio's own timers, at no
extra cost). In tests a ``VirtualClock`` stands still until ``advance`` moves it, firing every
timer that falls due, in order, so a 20 s long-poll window or a one-hour token takes no real
time. Only the emulator's timers move: a client's own timers (the real SDK's) stay real.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Seconds since the epoch, as ``time.time()``."""
        ...

    async def sleep(self, seconds: float) -> None: ...

    def timeout(self, seconds: float | None) -> AbstractAsyncContextManager[None]:
        """Like ``asyncio.timeout``: raises ``TimeoutError`` once ``seconds`` have passed."""
        ...


class WallClock:
    """Real time."""

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def timeout(self, seconds: float | None) -> AbstractAsyncContextManager[None]:
        return asyncio.timeout(seconds)


class VirtualClock:
    """Time that moves only when told. ``await clock.advance(20)`` fires every timer due within
    the next 20 virtual seconds, in deadline order, and returns once the tasks they woke have
    run up to their next wait."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start
        self._timers: list[_Timer] = []
        self._order = itertools.count()
        self._timer_added = asyncio.Event()  # replaced each time it fires

    def time(self) -> float:
        return self._now

    def pending(self) -> int:
        """Timers waiting to fire."""
        return sum(timer.alive for timer in self._timers)

    def _at(self, deadline: float, fire: Callable[[], None]) -> _Timer:
        timer = _Timer(deadline, next(self._order), fire)
        heapq.heappush(self._timers, timer)
        self._timer_added.set()
        self._timer_added = asyncio.Event()
        return timer

    async def until_waiting(self, count: int = 1) -> None:
        """Return once ``count`` timers are pending: something sleeps or waits on the clock, so
        an ``advance`` now will reach it."""
        while self.pending() < count:
            await self._timer_added.wait()

    async def sleep(self, seconds: float) -> None:
        done = asyncio.get_running_loop().create_future()
        timer = self._at(self._now + max(0.0, seconds),
                         lambda: done.done() or done.set_result(None))
        try:
            await done
        finally:
            timer.alive = False

    @asynccontextmanager
    async def timeout(self, seconds: float | None) -> AsyncIterator[None]:
        async with asyncio.timeout(None) as scope:
            if seconds is None:
                yield
                return
            loop = asyncio.get_running_loop()
            # when the virtual deadline passes, move asyncio's deadline to "now"
            timer = self._at(self._now + max(0.0, seconds),
                             lambda: scope.expired() or scope.reschedule(loop.time()))
            try:
                yield
            finally:
                timer.alive = False

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, firing what falls due on the way."""
        target = self._now + seconds
        while self._timers and self._timers[0].deadline <= target:
            timer = heapq.heappop(self._timers)
            if not timer.alive:
                continue
            self._now = max(self._now, timer.deadline)
            timer.alive = False
            timer.fire()
            await _let_woken_tasks_run()
        self._now = target
        await _let_woken_tasks_run()


@dataclass(order=True)
class _Timer:
    deadline: float
    order: int
    fire: Callable[[], None] = field(compare=False)
    alive: bool = field(default=True, compare=False)


async def _let_woken_tasks_run(rounds: int = 20) -> None:
    # A woken task may take a few loop turns (a timeout scope, a lock, a write) before it waits
    # again; yield enough of them for that. It is not a timed sleep: no real time passes.
    for _ in range(rounds):
        await asyncio.sleep(0)
