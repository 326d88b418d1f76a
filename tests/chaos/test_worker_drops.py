"""Our Worker keeps processing a queue while its connection is dropped again and again, and
while it is stopped and started as messages arrive: nothing is processed twice, nothing
acknowledged is lost."""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter

import pytest

from localmesh.worker import Worker
from localmesh.worker.backoff import Backoff
from localmesh.worker.room import RoomClient

pytestmark = pytest.mark.slow

ROOM = "chaos-worker"
BOUND = 20.0


class Recorder(Worker):
    """Records each message; optionally holds it until the test lets it go."""

    def __init__(self, **options) -> None:
        super().__init__(queue="jobs", requires=[], **options)
        self.seen: list[int] = []
        self.hold: asyncio.Event | None = None
        self.holding = asyncio.Event()

    async def process_message(self, *, chat_context, room, message, toolkits):
        self.seen.append(message["n"])
        if self.hold is not None:
            self.holding.set()
            await self.hold.wait()
        return None


def _fast(seed: int) -> dict:
    return {"backoff": Backoff(base=0.005, cap=0.02, rng=random.Random(seed))}


async def test_drops_while_processing_lose_and_repeat_nothing(server):
    server.long_poll_window = 0.01
    rng = random.Random(5)
    token = server.mint_token(room=ROOM, name="worker")
    reconnect = Backoff(base=0.005, cap=0.02, rng=random.Random(6))
    async with (
        RoomClient(server.url, ROOM, token, reconnect_backoff=reconnect) as room,
        RoomClient(server.url, ROOM, server.mint_token(room=ROOM, name="tx")) as tx,
    ):
        worker = Recorder(**_fast(1))
        worker.hold = asyncio.Event()
        total = 40
        async with asyncio.timeout(BOUND):
            for n in range(total):
                await tx.queues.send("jobs", {"n": n})
            await worker.start(room)
            drops = 0
            while len(worker.seen) < total:
                worker.holding.clear()
                worker.hold.clear()
                await worker.holding.wait()  # a message is in hand, no receive on the wire
                if rng.random() < 0.5:
                    drops += await server.drop_connections(ROOM)
                worker.hold.set()
            await worker.wait_for(lambda s: s.handled == total and not s.in_flight, timeout=None)
            await worker.stop()
        assert drops > 0 and room.reconnects > 0
    assert worker.seen == list(range(total))  # once each, in order
    assert await server.state.queues.list(ROOM) == [("jobs", 0)]


async def test_drops_at_random_moments_repeat_nothing(server):
    """Drops land anywhere, mid-receive included: a message whose reply was cut with the
    socket may be lost (at-most-once), one per failed receive at most; none is repeated."""
    server.long_poll_window = 0.005
    rng = random.Random(8)
    reconnect = Backoff(base=0.005, cap=0.02, rng=random.Random(9))
    async with (
        RoomClient(server.url, ROOM, server.mint_token(room=ROOM, name="worker"),
                   reconnect_backoff=reconnect) as room,
        RoomClient(server.url, ROOM, server.mint_token(room=ROOM, name="tx"), reconnect=False) as tx,
    ):
        worker = Recorder(**_fast(2))
        await worker.start(room)
        total = 60
        drops = 0
        async with asyncio.timeout(BOUND):
            for n in range(total):
                await tx.queues.send("jobs", {"n": n})
                if rng.random() < 0.15:
                    # only the worker's connection: the sender must not fail
                    for connection in list(server._uvicorn.server_state.connections):
                        scope = getattr(connection, "scope", None) or {}
                        if scope.get("path") == f"/rooms/{ROOM}" and _is(connection, room):
                            connection.transport.abort()
                            drops += 1
            # everything sent is either processed or still queued (or lost with a failed receive)
            await worker.wait_for(lambda s: not s.in_flight, timeout=None)
            await worker.stop()
            await server.state.queues.settle()
        left = []
        while (got := await server.state.queues.receive(ROOM, "jobs", wait=False)) is not None:
            left.append(got["n"])
    assert drops > 0
    counts = Counter(worker.seen + left)
    assert not [n for n, c in counts.items() if c > 1], f"repeated: {counts}"
    lost = set(range(total)) - set(counts)
    assert len(lost) <= worker.stats.receive_failures, (lost, worker.stats)


def _is(connection, client: RoomClient) -> bool:
    """Whether a server-side connection is ``client``'s (same local port)."""
    ws = client._connection._ws if client._connection is not None else None
    if ws is None:
        return False
    peer = connection.transport.get_extra_info("peername")
    return peer is not None and peer[1] == ws.local_address[1]


async def test_stop_and_start_while_messages_arrive(server, caplog):
    """``stop()`` cancels the pending long poll; a message the server then hands to it comes
    back to the queue (sent again by the client), so a restarted worker still gets it."""
    caplog.set_level(logging.INFO, logger="localmesh.worker.room")
    server.long_poll_window = 5.0
    token = server.mint_token(room=ROOM, name="worker")
    async with (
        RoomClient(server.url, ROOM, token) as room,
        RoomClient(server.url, ROOM, server.mint_token(room=ROOM, name="tx")) as tx,
    ):
        total = 30
        seen: list[int] = []
        async with asyncio.timeout(BOUND):
            for n in range(total):
                worker = Recorder(**_fast(n))
                worker.seen = seen
                await worker.start(room)
                await server.state.queues.until_waiting(ROOM, "jobs")
                await worker.stop()  # the server still holds that long poll...
                await tx.queues.send("jobs", {"n": n})  # ...and hands this message to it
            await room.queues.list()  # a round trip: every orphaned reply has been read
            worker = Recorder(**_fast(99))
            worker.seen = seen
            await worker.start(room)
            await worker.wait_for(lambda s: len(seen) >= total, timeout=None)
            await worker.stop()
    assert sorted(seen) == list(range(total)), seen
    assert "returning a message received after cancellation" in caplog.text  # the path ran
