"""VirtualClock on its own: timers fire in deadline order, only when the clock moves."""

from __future__ import annotations

import asyncio
import time

import pytest

from localmesh.emulator.clock import VirtualClock, WallClock


async def test_sleepers_wake_in_deadline_order_when_time_reaches_them() -> None:
    clock = VirtualClock(start=1000.0)
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.time()))

    tasks = [asyncio.ensure_future(sleeper(n, s)) for n, s in (("late", 30), ("soon", 5), ("mid", 10))]
    await clock.until_waiting(3)
    await clock.advance(9)
    assert woke == [("soon", 1005.0)]
    await clock.advance(100)
    assert woke == [("soon", 1005.0), ("mid", 1010.0), ("late", 1030.0)]
    assert clock.time() == 1109.0
    await asyncio.gather(*tasks)


async def test_a_timeout_expires_only_on_virtual_time() -> None:
    clock = VirtualClock()
    never = asyncio.get_running_loop().create_future()

    async def wait() -> None:
        async with clock.timeout(60):
            await never

    task = asyncio.ensure_future(wait())
    await clock.until_waiting()
    await clock.advance(59)
    assert not task.done()
    await clock.advance(1)
    with pytest.raises(TimeoutError):
        await task


async def test_a_finished_wait_leaves_no_timer_behind() -> None:
    clock = VirtualClock()
    async with clock.timeout(60):
        pass
    sleeping = asyncio.ensure_future(clock.sleep(5))
    await clock.until_waiting()
    sleeping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sleeping
    assert clock.pending() == 0


async def test_the_wall_clock_is_real_time() -> None:
    clock = WallClock()
    async with clock.timeout(None):
        await clock.sleep(0)
    assert abs(clock.time() - time.time()) < 5
