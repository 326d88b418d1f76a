"""The one clock the emulator's timers read: long-poll windows, token expiry, timestamps.

Outside tests it is the wall clock (``WallClock``: ``time.time`` and asyncio's own timers, at no
extra cost). In tests a ``VirtualClock`` stands still until ``advance`` moves it, firing every
timer that falls due, in order, so a 20 s long-poll window or a one-hour token takes no real
time. Only the emulator's timers move: a client's own timers (the real SDK's) stay real.

In auto mode (``VirtualClock(auto=True)``, ``with clock.auto():``) the clock also moves by
itself: whenever the event loop has settled, with nothing left to run but waits on the clock,
it jumps to the next timer (as trio's ``MockClock`` with ``autojump_threshold=0`` and Temporal's
time-skipping test server do). "Settled" is counted in loop turns, not measured in real time:
``AUTO_IDLE_TURNS`` turns in a row in which no callback but the clock's own was ready (each turn
also polls the sockets, so bytes written on 127.0.0.1 wake their reader first).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sized
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from localmesh.protocol.loop_turn import loop_name, ready_queue, sees_ready_queue

# Loop turns in a row with nothing else ready before auto mode calls the loop settled. One
# would do for work inside the loop (it always has a callback queued); the few more give bytes
# in flight on 127.0.0.1 and a blob thread's reply a little slack. A turn costs microseconds.
AUTO_IDLE_TURNS = 8


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
    run up to their next wait. With ``auto=True`` (or inside ``with clock.auto():``) it also
    jumps to the next timer by itself whenever every task is waiting on the clock."""

    def __init__(self, start: float | None = None, *, auto: bool = False) -> None:
        self._now = time.time() if start is None else start
        self._timers: list[_Timer] = []
        self._order = itertools.count()
        self._timer_added = asyncio.Event()  # replaced each time it fires
        self._auto = auto
        self._jumper: asyncio.Task[None] | None = None  # auto mode's task, while timers wait
        self.jumps = 0  # how often auto mode moved the clock

    def time(self) -> float:
        return self._now

    # ------------------------------------------------------------ auto mode

    @property
    def auto_advancing(self) -> bool:
        """Whether the clock is in auto mode."""
        return self._auto

    @contextmanager
    def auto(self, enabled: bool = True) -> Iterator[VirtualClock]:
        """Auto mode on (or, with ``False``, off) for the ``with`` block, then as it was."""
        before = self._auto
        self._auto = enabled
        try:
            self._wake_jumper()
            yield self
        finally:
            self._auto = before

    async def aclose(self) -> None:
        """Auto mode off for good, and its task ended (a test's teardown)."""
        self._auto = False
        jumper, self._jumper = self._jumper, None
        if jumper is not None and jumper is not asyncio.current_task():
            jumper.cancel()
            await asyncio.gather(jumper, return_exceptions=True)

    def _wake_jumper(self) -> None:
        """Start auto mode's task if it is on, a timer waits and none is running. Outside a
        running loop there is nothing to do: the first timer, made in one, starts it."""
        if not self._auto or self._jumper is not None or self._next_deadline() is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if not sees_ready_queue(loop):  # "settled" is read from the loop's ready queue
            raise RuntimeError("VirtualClock's auto mode needs asyncio's own event loop"
                               f" (this one is {loop_name(loop)}'s)")
        self._jumper = loop.create_task(self._jump_while_settled(loop), name="virtual-clock-auto")

    async def _jump_while_settled(self, loop: asyncio.AbstractEventLoop) -> None:
        """While auto mode is on and a timer waits: once the loop has settled, move the clock
        to the earliest timer (firing it and whatever falls due with it)."""
        ready = ready_queue(loop)
        try:
            while self._auto and self._next_deadline() is not None:
                if await _settled(ready):
                    deadline = self._next_deadline()  # the wait may have ended meanwhile
                    if deadline is not None and self._auto:
                        self.jumps += 1
                        await self.advance(max(0.0, deadline - self._now))
        finally:
            self._jumper = None

    def _next_deadline(self) -> float | None:
        """The earliest waiting timer's deadline (ended waits are dropped from the top)."""
        while self._timers and not self._timers[0].alive:
            heapq.heappop(self._timers)
        return self._timers[0].deadline if self._timers else None

    def pending(self) -> int:
        """Timers waiting to fire."""
        return sum(timer.alive for timer in self._timers)

    def _at(self, deadline: float, fire: Callable[[], None]) -> _Timer:
        timer = _Timer(deadline, next(self._order), fire)
        heapq.heappush(self._timers, timer)
        self._timer_added.set()
        self._timer_added = asyncio.Event()
        if self._auto and self._jumper is None:
            self._wake_jumper()
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
        self._now = max(self._now, target)  # an auto jump in between may have gone further
        await _let_woken_tasks_run()


@dataclass(order=True)
class _Timer:
    deadline: float
    order: int
    fire: Callable[[], None] = field(compare=False)
    alive: bool = field(default=True, compare=False)


async def _settled(ready: Sized, turns: int = AUTO_IDLE_TURNS) -> bool:
    """Whether ``turns`` loop turns in a row pass with no callback ready but this task's own:
    nothing runs, no socket has bytes to read, no timer of asyncio's fell due. Not a timed wait:
    each turn polls the sockets without blocking."""
    for _ in range(turns):
        await asyncio.sleep(0)
        if len(ready):  # what is queued behind this task: another task's step, I/O, a due timer
            return False
    return True


async def _let_woken_tasks_run(rounds: int = 20) -> None:
    # A woken task may take a few loop turns (a timeout scope, a lock, a write) before it waits
    # again; yield enough of them for that. It is not a timed sleep: no real time passes.
    for _ in range(rounds):
        await asyncio.sleep(0)
