"""``loop_turn.ready_queue`` answers "is anything else ready in this turn?" exactly on asyncio's
loops, and "busy" on uvloop, whose queue cannot be seen."""

from __future__ import annotations

import asyncio

import uvloop

from localmesh.protocol.loop_turn import ALWAYS_BUSY, loop_name, ready_queue, sees_ready_queue


def test_on_asyncio_it_is_the_loops_own_queue() -> None:
    async def probe() -> list[bool]:
        loop = asyncio.get_running_loop()
        ready = ready_queue(loop)
        assert ready is ready_queue(loop)  # one object for the loop's life: callers keep it
        seen = [bool(ready)]  # the task's first step: nothing else was scheduled
        loop.call_soon(lambda: None)
        seen.append(bool(ready))  # a callback waits for this turn's end
        await asyncio.sleep(0)  # it runs, then this task again: nothing else left
        seen.append(bool(ready))
        other = asyncio.create_task(asyncio.sleep(0))
        seen.append(bool(ready))  # a new task's first step is a ready callback too
        await other
        return seen

    loop = asyncio.new_event_loop()
    try:
        assert sees_ready_queue(loop) and loop_name(loop) == "asyncio"
        assert loop.run_until_complete(probe()) == [False, True, False, True]
    finally:
        loop.close()


def test_on_uvloop_it_is_always_busy() -> None:
    async def probe() -> list[bool]:
        loop = asyncio.get_running_loop()
        ready = ready_queue(loop)
        assert ready is ALWAYS_BUSY
        seen = [bool(ready)]  # nothing else is scheduled, but uvloop cannot say so
        loop.call_soon(lambda: None)
        seen.append(bool(ready))
        return seen

    loop = uvloop.new_event_loop()
    try:
        assert not sees_ready_queue(loop) and loop_name(loop) == "uvloop"
        assert loop.run_until_complete(probe()) == [True, True]
    finally:
        loop.close()


def test_a_loop_that_is_not_asyncios_is_busy_even_with_a_ready_attribute() -> None:
    class Other(asyncio.AbstractEventLoop):
        _ready: list[object] = []  # someone else's meaning of the name

    assert ready_queue(Other()) is ALWAYS_BUSY
