"""The server and our client on uvloop, as ``localmesh serve`` runs by default: where asyncio's
loop lets them skip an end-of-turn callback, uvloop takes the other path (``loop_turn``), and
the queue's promises are the same: a pipelined burst shares its commits and comes back whole,
in order, each message once; a long poll is woken by another connection's send."""

from __future__ import annotations

import asyncio

import uvloop

from localmesh.emulator import RoomServer
from localmesh.worker import RoomClient

BURST = 64
BOUND = 30.0


async def _burst_and_wake() -> None:
    async with RoomServer() as server:
        store = server.state.store
        async with (RoomClient(server.url, "r", server.mint_token(room="r", name="a")) as a,
                    RoomClient(server.url, "r", server.mint_token(room="r", name="b")) as b):
            async with asyncio.timeout(BOUND):
                await a.queues.send("q", {"n": -1})  # the queue exists: the burst only appends
                before = store.commits
                await asyncio.gather(*(a.queues.send("q", {"n": n}) for n in range(BURST)))
                # The burst goes out in a write or two and comes in a read or two: its sends
                # share commits (one each would be BURST).
                assert store.commits - before < BURST // 4, store.commits - before
                got = [await a.queues.receive("q", wait=False) for _ in range(BURST + 1)]
                assert got == [{"n": n} for n in range(-1, BURST)]
                assert await a.queues.receive("q", wait=False) is None
                waiting = asyncio.create_task(b.queues.receive("wake"))
                # Parked once its queue exists (the receive creates it): then the send wakes it.
                while not any(queue.name == "wake" for queue in await a.queues.list()):
                    assert not waiting.done()
                await a.queues.send("wake", {"hello": "b"})
                assert await waiting == {"hello": "b"}


def test_server_and_client_keep_the_queue_promises_on_uvloop() -> None:
    asyncio.run(_burst_and_wake(), loop_factory=uvloop.new_event_loop)


def test_the_virtual_clocks_auto_mode_says_it_needs_asyncios_loop() -> None:
    from localmesh.emulator.clock import VirtualClock

    async def auto() -> str:
        clock = VirtualClock(auto=True)
        try:
            await clock.sleep(1)
        except RuntimeError as error:
            return str(error)
        return "slept"

    message = asyncio.run(auto(), loop_factory=uvloop.new_event_loop)
    assert "needs asyncio's own event loop" in message and "uvloop" in message
