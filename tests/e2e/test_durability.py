"""kill -9 in the middle of a load: every acknowledged send and upload is there after a restart.

A real ``localmesh serve`` process takes concurrent sends from several connections (so that
sends share commits) and uploads, and is killed with SIGKILL while they run. After a restart
on the same data dir, every send that was acknowledged is in its queue, once, in each
sender's order, and every acknowledged upload downloads byte for byte. Sends still in
flight at the kill may or may not be there (the protocol cannot say), at most one per sender.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest
from localmesh_serve import free_port
from test_restart import ROOM, _api_key, _token, serve

from localmesh.worker import RoomClient
from localmesh.worker.errors import RoomError

pytestmark = [pytest.mark.compat, pytest.mark.slow]

SENDERS = 8
ACKS_BEFORE_KILL = 1500  # then the kill lands while sends and an upload are in flight
BOUND = 60.0


async def test_acknowledged_sends_and_uploads_survive_kill_9(tmp_path: Path):
    data_dir = tmp_path / "data"
    port = free_port()
    acked: dict[int, list[int]] = {k: [] for k in range(SENDERS)}
    uploads: dict[str, bytes] = {}
    enough = asyncio.Event()

    async def sender(room: RoomClient, k: int) -> None:
        n = 0
        while True:  # bounded: the kill ends the connection, and with it this loop
            await room.queues.send("jobs", {"sender": k, "n": n})
            acked[k].append(n)
            n += 1
            if sum(map(len, acked.values())) >= ACKS_BEFORE_KILL:
                enough.set()

    async def uploader(room: RoomClient) -> None:
        i = 0
        while True:
            data = os.urandom(200_000 + i)
            await room.storage.upload(f"up/{i}.bin", data)
            uploads[f"up/{i}.bin"] = hashlib.sha256(data).digest()
            i += 1

    async with serve(data_dir, port) as first:
        api_key = await _api_key(data_dir)
        rooms = [RoomClient(first.url, ROOM, _token(api_key, f"s{k}"), reconnect=False)
                 for k in range(SENDERS + 1)]
        for room in rooms:
            await room.connect()
        tasks = [asyncio.ensure_future(sender(room, k)) for k, room in enumerate(rooms[:SENDERS])]
        tasks.append(asyncio.ensure_future(uploader(rooms[SENDERS])))
        async with asyncio.timeout(BOUND):
            await enough.wait()
        first.process.kill()  # SIGKILL: no shutdown, no final checkpoint
        await first.process.wait()
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            assert isinstance(result, RoomError), f"a client failed otherwise: {result!r}"
        for room in rooms:
            await room.close()

    async with serve(data_dir, port) as second:
        async with RoomClient(second.url, ROOM, _token(api_key, "after"), reconnect=False) as room:
            found: dict[int, list[int]] = {k: [] for k in range(SENDERS)}
            async with asyncio.timeout(BOUND):
                while (message := await room.queues.receive("jobs", wait=False)) is not None:
                    found[message["sender"]].append(message["n"])
                for path, digest in uploads.items():
                    got = await room.storage.download(path)
                    assert hashlib.sha256(got.data).digest() == digest, f"{path} differs"
        assert second.process.returncode is None
    for k in range(SENDERS):
        # In order, once each, and every acknowledged one; at most the one in flight more.
        assert found[k] == sorted(set(found[k])), f"sender {k}: out of order or duplicated"
        assert found[k][: len(acked[k])] == acked[k], f"sender {k}: an acknowledged send was lost"
        assert len(found[k]) - len(acked[k]) in (0, 1), f"sender {k}: more than the send in flight"
    assert sum(map(len, acked.values())) >= ACKS_BEFORE_KILL and uploads
