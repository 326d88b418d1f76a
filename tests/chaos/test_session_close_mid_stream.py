"""A session that ends in the middle of a streamed upload or download, or of a long poll:
the server releases the call (no task left, no waiter left) and the file is the old or
the new version, never a part."""

from __future__ import annotations

import asyncio

import pytest

from localmesh.protocol.wire import binary_content
from localmesh.worker.room import RoomClient

pytestmark = pytest.mark.slow

ROOM = "chaos-streams"
BOUND = 10.0
OLD = b"old version " * 1000
NEW = bytes(range(256)) * 20000  # 5 MB: several pulls of the server's 1 MiB


async def _only_session(server):
    (session,) = server.state.rooms.sessions(ROOM)
    return session


async def _end(server, client: RoomClient, how: str) -> None:
    if how == "drop":
        assert await server.drop_connections(ROOM) == 1
    else:
        await client.close()


@pytest.mark.parametrize("how", ["drop", "close"])
async def test_upload_cut_off_midway(server, how):
    async with RoomClient(server.url, ROOM, server.mint_token(room=ROOM, name="up"), reconnect=False) as c:
        await c.storage.upload("f.bin", OLD)
        session = await _only_session(server)
        async with asyncio.timeout(BOUND):
            stream = await c.open_tool_stream("storage", "upload")
            await stream.send(binary_content({
                "kind": "start", "path": "f.bin", "overwrite": True, "size": len(NEW),
            }))
            await stream.opened()
            pull = await stream.receive()
            size = pull.header["headers"]["chunk_size"]
            await stream.send(binary_content({"kind": "data"}, NEW[:size]))
            await stream.receive()  # the next pull: the server holds part of the file
            await _end(server, c, how)
            await session.closed.wait()
    assert not session._tasks and not session._streams
    assert server.state.rooms.sessions(ROOM) == []
    _, data = await server.state.store.read_file(ROOM, "f.bin")
    assert data == OLD


@pytest.mark.parametrize("how", ["drop", "close"])
async def test_download_cut_off_midway(server, how):
    async with RoomClient(server.url, ROOM, server.mint_token(room=ROOM, name="dn"), reconnect=False) as c:
        await c.storage.upload("g.bin", NEW)
        session = await _only_session(server)
        async with asyncio.timeout(BOUND):
            stream = await c.open_tool_stream("storage", "download")
            await stream.send(binary_content({"kind": "start", "path": "g.bin", "chunk_size": 1000}))
            await stream.opened()
            await stream.receive()  # start
            await stream.send(binary_content({"kind": "pull"}))
            await stream.receive()  # one chunk of many
            await _end(server, c, how)
            await session.closed.wait()
    assert not session._tasks and not session._streams
    assert server.state.rooms.sessions(ROOM) == []
    _, data = await server.state.store.read_file(ROOM, "g.bin")
    assert data == NEW


@pytest.mark.parametrize("how", ["drop", "close"])
async def test_long_polls_cut_off(server, how):
    server.long_poll_window = 60
    async with RoomClient(server.url, ROOM, server.mint_token(room=ROOM, name="lp"), reconnect=False) as c:
        session = await _only_session(server)
        polls = [asyncio.create_task(c.queues.receive(f"q{i % 2}")) for i in range(6)]
        async with asyncio.timeout(BOUND):
            await server.state.queues.until_waiting(ROOM, "q0", 3)
            await server.state.queues.until_waiting(ROOM, "q1", 3)
            await _end(server, c, how)
            await session.closed.wait()
            await asyncio.gather(*polls, return_exceptions=True)
    assert not session._tasks
    assert server.state.rooms.sessions(ROOM) == []
    assert server.state.queues.waiting(ROOM, "q0") == server.state.queues.waiting(ROOM, "q1") == 0
    assert not any(server.state.queues._waiters.get((ROOM, q)) for q in ("q0", "q1"))
