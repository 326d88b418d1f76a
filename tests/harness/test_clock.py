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


# ---------------------------------------------------------------- auto mode


async def test_auto_mode_wakes_every_sleeper_in_order_with_no_advance() -> None:
    clock = VirtualClock(start=1000.0, auto=True)
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.time()))
        if name == "soon":  # a timer made while the clock jumps is reached too
            await clock.sleep(60)
            woke.append(("again", clock.time()))

    started = time.monotonic()
    async with asyncio.timeout(5):
        await asyncio.gather(*(sleeper(n, s) for n, s in (("late", 3600), ("soon", 5), ("mid", 10))))
    assert woke == [("soon", 1005.0), ("mid", 1010.0), ("again", 1065.0), ("late", 4600.0)]
    assert clock.jumps == 4 and clock.pending() == 0
    assert time.monotonic() - started < 1.0


async def test_auto_mode_waits_while_other_work_runs() -> None:
    clock = VirtualClock(auto=True)
    order: list[str] = []

    async def busy() -> None:  # a long chain of loop turns, none of them on the clock
        for _ in range(2000):
            await asyncio.sleep(0)
        order.append("busy done")

    async def sleeper() -> None:
        await clock.sleep(30)
        order.append("slept")

    async with asyncio.timeout(5):
        await asyncio.gather(sleeper(), busy())
    assert order == ["busy done", "slept"]


async def test_auto_mode_lets_bytes_on_127_0_0_1_arrive_before_it_jumps() -> None:
    """A reply in flight on a real socket is work: a virtual 5 s timeout around the read
    never fires, however often the exchange is repeated."""
    clock = VirtualClock(auto=True)

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            writer.write(line)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for n in range(200):
            writer.write(f"{n}\n".encode())
            async with clock.timeout(5):
                assert await reader.readline() == f"{n}\n".encode()
        assert clock.jumps == 0
        # With nothing in flight, the same timeout is skipped to at once.
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(5), clock.timeout(5):
                await reader.readline()
        assert clock.jumps == 1
    finally:
        writer.close()
        server.close()
        await server.wait_closed()


async def test_auto_mode_for_a_block_and_off_for_a_block() -> None:
    clock = VirtualClock(start=0.0)
    assert not clock.auto_advancing
    with clock.auto():
        assert clock.auto_advancing
        async with asyncio.timeout(5):
            await clock.sleep(20)
        assert clock.time() == 20.0
    assert not clock.auto_advancing
    # Off again: a sleeper waits however many loop turns pass, until the clock is moved.
    sleeping = asyncio.ensure_future(clock.sleep(5))
    await clock.until_waiting()
    for _ in range(200):
        await asyncio.sleep(0)
    assert not sleeping.done()
    with clock.auto():  # turned on while a timer waits: it is reached
        async with asyncio.timeout(5):
            await sleeping
    auto = VirtualClock(start=0.0, auto=True)
    with auto.auto(False):
        held = asyncio.ensure_future(auto.sleep(1))
        await auto.until_waiting()
        for _ in range(200):
            await asyncio.sleep(0)
        assert not held.done() and auto.jumps == 0
    async with asyncio.timeout(5):  # back to auto: a new timer starts the jumping again
        await auto.sleep(2)
        assert held.done()  # due first, woken on the way
    assert (auto.time(), auto.jumps) == (2.0, 2)
    await auto.aclose()
    assert not auto.auto_advancing
