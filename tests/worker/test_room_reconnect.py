"""Dropped connections: pending requests fail, the client reconnects, nothing queued is lost."""

from __future__ import annotations

import asyncio
import random

import pytest

from localmesh.worker.backoff import Backoff
from localmesh.worker.errors import ConnectionLost, RoomClosed
from localmesh.worker.room import RoomClient

FAST = {"reconnect_backoff": Backoff(base=0.01, cap=0.05, rng=random.Random(1))}


async def test_pending_request_fails_and_the_client_reconnects(server, connect, room_name) -> None:
    room = await connect("dropper", **FAST)
    sender = await connect("sender")
    pending = asyncio.create_task(room.queues.receive("jobs", wait=True))
    await room.queues.list()  # the receive is on the wire before the drop
    assert await server.drop_connections(room_name) >= 1
    with pytest.raises(ConnectionLost):
        await asyncio.wait_for(pending, 5)
    # New requests wait for the new connection instead of failing.
    await sender.queues.send("jobs", {"n": 1})
    assert await asyncio.wait_for(room.queues.receive("jobs"), 5) == {"n": 1}
    assert room.reconnects == 1
    assert room.connected


async def test_no_message_is_lost_across_a_drop(server, connect, room_name) -> None:
    room = await connect("dropper", **FAST)
    for n in range(3):
        await room.queues.send("jobs", {"n": n})
    await server.drop_connections(room_name)
    await asyncio.wait_for(room.wait_connected(reconnects=1), 5)
    received = [await asyncio.wait_for(room.queues.receive("jobs"), 5) for _ in range(3)]
    assert received == [{"n": 0}, {"n": 1}, {"n": 2}]


async def test_a_receive_cancelled_mid_poll_puts_a_late_message_back(connect) -> None:
    room = await connect("canceller")
    poll = asyncio.create_task(room.queues.receive("jobs", wait=True))
    await room.queues.list()  # the long poll is pending on the server
    poll.cancel()
    # The server still holds that poll, so this message is handed to it; the client,
    # no longer waiting, must send it back to the queue rather than drop it.
    await room.queues.send("jobs", {"late": True})
    assert await asyncio.wait_for(room.queues.receive("jobs"), 5) == {"late": True}


async def test_a_failing_orphan_handler_does_not_end_the_connection(connect) -> None:
    room = await connect("canceller")
    connection = await room.connection()

    def broken_handler(content) -> None:
        raise RuntimeError("a bug in the handler")

    poll = asyncio.create_task(room.invoke(
        "queues", "receive", {"name": "jobs", "wait": True}, on_orphan=broken_handler
    ))
    await room.queues.list()  # the long poll is pending on the server
    poll.cancel()
    await room.queues.send("jobs", {"late": True})  # handed to the abandoned poll
    await room.queues.list()  # a round trip: the orphaned reply has been read
    assert connection.is_open
    assert room.reconnects == 0


async def test_a_server_close_is_final(server, room_name) -> None:
    client = RoomClient(server.url, room_name, server.mint_token(room=room_name, name="x"))
    async with client:
        await client._require_connection_now()._ws.close()  # looks like a clean close to us
        await asyncio.wait_for(client.wait_closed(), 5)
        assert not client.connected
        with pytest.raises(RoomClosed):
            await client.queues.list()


def _attributes(server, room: RoomClient) -> dict:
    """What the server holds for this client's current session."""
    participants = server.participants(room.room_name)
    return next(p["attributes"] for p in participants if p["id"] == room.participant_id)


async def test_attributes_are_sent_again_after_a_reconnect(server, connect, room_name) -> None:
    room = await connect("dropper", **FAST)
    assert room.attributes == {"name": "dropper"}  # what the server gave us
    await room.set_attribute("status", "busy")
    await room.queues.list()  # a round trip: the fire-and-forget message has been read
    assert _attributes(server, room)["status"] == "busy"
    old_id = room.participant_id

    await server.drop_connections(room_name)
    await asyncio.wait_for(room.wait_connected(reconnects=1), 5)
    await room.queues.list()
    assert room.participant_id != old_id  # a new session...
    assert _attributes(server, room)["status"] == "busy"  # ...told our attributes
    assert room.attributes == {"name": "dropper", "status": "busy"}
