"""Virtual time: the server's long-poll windows, token expiry and our Worker's backoff move
with ``localmesh_clock``, not with the wall clock."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

import pytest
from meshagent.api import RoomException

from localmesh.fixtures.llm import ScriptedLLMAdapter
from localmesh.worker import Backoff, RoomError, Worker

ROOM = "vt"
REAL_TIME_BOUND = 5.0  # far below the 20 s window: nothing here waits on the wall clock


async def test_a_20_second_long_poll_ends_when_the_clock_says(
    localmesh_server, localmesh_clock, localmesh_room, meshagent_room
) -> None:
    assert localmesh_server.long_poll_window == 20
    ours = await localmesh_room(ROOM, name="ours")
    async with asyncio.timeout(REAL_TIME_BOUND), meshagent_room(ROOM, name="sdk") as sdk:
        mine = asyncio.ensure_future(ours.queues.receive("jobs", wait=True))
        theirs = asyncio.ensure_future(sdk.queues.receive(name="jobs", wait=True))
        await localmesh_server.state.queues.until_waiting(ROOM, "jobs", count=2)
        await localmesh_clock.advance(19.9)
        assert not mine.done() and not theirs.done()
        await localmesh_clock.advance(0.1)
        assert await mine is None
        assert await theirs is None


@pytest.mark.localmesh_strict(queued_messages=["jobs"])  # the two sends before expiry stay
async def test_a_token_that_expires_mid_connection_refuses_the_next_call(
    localmesh_server, localmesh_clock, localmesh_room, meshagent_room
) -> None:
    one_hour = localmesh_server.mint_token(room=ROOM, name="brief", expires_in=timedelta(hours=1))
    ours = await localmesh_room(ROOM, name="brief", token=one_hour, reconnect=False)
    async with asyncio.timeout(REAL_TIME_BOUND), meshagent_room(ROOM, token=one_hour) as sdk:
        await ours.queues.send("jobs", {"n": 1})
        await sdk.queues.send(name="jobs", message={"n": 2})
        await localmesh_clock.advance(3600)
        with pytest.raises(RoomError, match="token has expired"):
            await ours.queues.send("jobs", {"n": 3})
        with pytest.raises(RoomException, match="token has expired"):
            await sdk.queues.send(name="jobs", message={"n": 4})
    # the two sends before expiry are there; the refused ones are not
    assert [q for q in await localmesh_server.state.queues.list(ROOM)] == [("jobs", 2)]


async def test_our_workers_backoff_moves_with_the_clock(
    localmesh_server, localmesh_clock, localmesh_room
) -> None:
    localmesh_server.faults.fail("queues", "receive", times=3, room=ROOM)
    room = await localmesh_room(ROOM, name="worker")
    worker = Worker(
        queue="jobs", llm_adapter=ScriptedLLMAdapter("rules: [{answer: {text: done}}]"),
        backoff=Backoff(base=1.0, cap=30.0, rng=random.Random(7)), sleep=localmesh_clock.sleep,
    )
    await worker.start(room)
    try:
        async with asyncio.timeout(REAL_TIME_BOUND):
            for failures in (1, 2, 3):
                await worker.wait_for(lambda s, n=failures: s.receive_failures == n, None)
                delay = worker.stats.last_delay
                assert delay is not None and delay >= 0.5 * 2 ** (failures - 1)
                # the worker sleeps on virtual time: nothing happens until the clock moves
                await localmesh_clock.until_waiting()
                await localmesh_clock.advance(delay)
            await localmesh_server.state.queues.until_waiting(ROOM, "jobs")
            assert worker.stats.receive_failures == 3
    finally:
        # stop() lets the pending long poll end: on virtual time, that is when the clock says
        stopping = asyncio.ensure_future(worker.stop())
        await localmesh_clock.advance(localmesh_server.long_poll_window)
        async with asyncio.timeout(REAL_TIME_BOUND):
            await stopping
