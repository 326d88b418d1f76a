"""The real RoomClient reconnects after a network failure and goes on working."""

from __future__ import annotations

import asyncio

import pytest
from compat_helpers import PROMPT, sdk_client, sdk_token
from meshagent.api import RoomException

pytestmark = [
    pytest.mark.compat,
    pytest.mark.localmesh_only(reason="fault injection: drops connections, or starts its own server"),
]

ROOM = "r"


async def test_client_reconnects_after_tcp_drop(server):
    async with sdk_client(server, ROOM, sdk_token(server, room=ROOM, name="phoenix")) as room:
        disconnected, reconnected = asyncio.Event(), asyncio.Event()
        room.on("disconnected", lambda **_: disconnected.set())
        room.on("reconnected", lambda **_: reconnected.set())
        room.local_participant.set_attribute("mood", "hopeful")
        await room.queues.send(name="before", message={"n": 1})
        first_session = room.session_id

        assert await server.drop_connections(ROOM) == 1
        async with asyncio.timeout(PROMPT):
            await disconnected.wait()
            await reconnected.wait()

        assert room.session_id != first_session
        async with asyncio.timeout(PROMPT):
            await room.queues.send(name="after", message={"n": 2})
            assert await room.queues.receive(name="after", wait=False) == {"n": 2}
            # what was committed before the drop is still there
            assert await room.queues.receive(name="before", wait=False) == {"n": 1}
        # the dead session is gone; the new one got the re-sent attributes
        (me,) = server.participants(ROOM)
        assert me["id"] == room.local_participant.id
        assert me["attributes"]["mood"] == "hopeful"
        assert me["attributes"]["name"] == "phoenix"


async def test_long_poll_cut_by_a_drop_loses_no_message(server):
    server.long_poll_window = 30
    async with (
        sdk_client(server, ROOM, sdk_token(server, room=ROOM, name="flaky")) as flaky,
        sdk_client(server, ROOM, sdk_token(server, room=ROOM, name="steady")) as steady,
    ):
        reconnected = {flaky: asyncio.Event(), steady: asyncio.Event()}
        for client, event in reconnected.items():
            client.on("reconnected", lambda event=event, **_: event.set())
        pending = asyncio.create_task(flaky.queues.receive(name="jobs", wait=True))
        async with asyncio.timeout(PROMPT):
            await server.state.queues.until_waiting(ROOM, "jobs")
        assert await server.drop_connections(ROOM) == 2
        with pytest.raises(RoomException):
            async with asyncio.timeout(PROMPT):
                await pending
        async with asyncio.timeout(PROMPT):
            for event in reconnected.values():
                await event.wait()
            # the dead long-poll must not swallow this message
            await steady.queues.send(name="jobs", message={"job": 1})
            assert await steady.queues.receive(name="jobs", wait=True) == {"job": 1}
        assert server.state.queues.waiting(ROOM, "jobs") == 0


async def test_client_works_with_permessage_deflate_accepted():
    # The SDK offers permessage-deflate; a server that accepts it must work as well as one that does not.
    from localmesh.emulator import RoomServer

    async with RoomServer(compression=True) as compressed:
        async with sdk_client(compressed, ROOM, sdk_token(compressed, room=ROOM, name="zip")) as room:
            big = {"text": "abc" * 100_000}
            async with asyncio.timeout(PROMPT):
                await room.queues.send(name="q", message=big)
                assert await room.queues.receive(name="q", wait=False) == big
