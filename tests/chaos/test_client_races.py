"""Our RoomClient: a queue message that reached the client is never dropped by it."""

from __future__ import annotations

import asyncio

import pytest

from localmesh.worker.room import RoomClient

pytestmark = pytest.mark.slow

ROOM = "chaos"
BOUND = 10.0


async def test_a_receive_cancelled_after_its_reply_arrived_puts_the_message_back(server):
    """The reply is read and resolves the request, then the receiving task is cancelled
    (``Worker.stop()``, say) before it runs again: the message must not vanish with it."""
    server.long_poll_window = BOUND
    async with (
        RoomClient(server.url, ROOM, server.mint_token(room=ROOM, name="rx")) as rx,
        RoomClient(server.url, ROOM, server.mint_token(room=ROOM, name="tx")) as tx,
    ):
        receiving = asyncio.create_task(rx.queues.receive("jobs"))
        async with asyncio.timeout(BOUND):
            await server.state.queues.until_waiting(ROOM, "jobs")
        connection = await rx.connection()
        resolve = connection._resolve

        def resolve_then_cancel(message_id, data):
            resolve(message_id, data)  # the request's future now holds the message...
            receiving.cancel()  # ...and its task is cancelled before it wakes up

        connection._resolve = resolve_then_cancel
        async with asyncio.timeout(BOUND):
            await tx.queues.send("jobs", {"n": 1})
            with pytest.raises(asyncio.CancelledError):
                await receiving
        connection._resolve = resolve
        server.long_poll_window = 2.0
        async with asyncio.timeout(BOUND):
            # put back by the client (a send), so it may take a moment: wait=True
            assert await tx.queues.receive("jobs") == {"n": 1}
