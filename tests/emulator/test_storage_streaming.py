"""Storage streams: memory flat in the file size, limits checked before bytes are stored.

Real websockets on 127.0.0.1, real SQLite and blob files in a temporary data dir; the real
SDK for the refused upload, raw streams of our client where a test must stop mid-way.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import httpx
import pytest
from meshagent.api import RoomException

from localmesh.emulator import RoomServer
from localmesh.fixtures.sdk import connect_meshagent_room
from localmesh.protocol.error_codes import INVALID_REQUEST
from localmesh.protocol.wire import binary_content
from localmesh.worker.errors import RoomError
from localmesh.worker.room import RoomClient

ROOM = "streams"
MB = 1024 * 1024
BOUND = 60.0


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def test_an_upload_over_the_limit_is_refused_before_a_byte_is_stored(tmp_path: Path):
    async with RoomServer(data_dir=tmp_path / "data", max_file_bytes=MB) as server:
        token = server.mint_token(room=ROOM, name="big")
        async with connect_meshagent_room(server.room_url(ROOM), token) as room:
            with pytest.raises(RoomException) as refused:
                await room.storage.upload(path="big.bin", data=b"x" * (2 * MB))
            assert refused.value.code == INVALID_REQUEST
            assert "limit" in str(refused.value)
            assert not await room.storage.exists(path="big.bin")
            await room.storage.upload(path="ok.bin", data=b"y" * MB)  # at the limit: fine
        blobs = list((tmp_path / "data" / "blobs").iterdir())
        assert [blob.stat().st_size for blob in blobs] == [MB]  # nothing of the refused one


async def test_an_upload_of_unknown_size_is_cut_at_the_limit(tmp_path: Path):
    async with RoomServer(data_dir=tmp_path / "data", max_file_bytes=3 * MB) as server:
        token = server.mint_token(room=ROOM, name="stream")
        async with RoomClient(server.url, ROOM, token, reconnect=False) as room:
            async with asyncio.timeout(BOUND):
                stream = await room.open_tool_stream("storage", "upload")
                async with stream:
                    await stream.send(binary_content({"kind": "start", "path": "s.bin", "size": None}))
                    await stream.opened()
                    with pytest.raises(RoomError) as refused:
                        while True:  # bounded: the server refuses once past its limit
                            chunk = await stream.receive()
                            wanted = chunk.header["headers"]["chunk_size"]
                            await stream.send(binary_content({"kind": "data"}, b"z" * wanted))
                    assert refused.value.code == INVALID_REQUEST and "limit" in str(refused.value)
            assert not await room.storage.exists("s.bin")
        assert list((tmp_path / "data" / "blobs").iterdir()) == []


async def test_downloads_that_are_never_pulled_hold_no_file_in_memory(tmp_path: Path):
    size = 40 * MB
    async with RoomServer(data_dir=tmp_path / "data") as server:
        token = server.mint_token(room=ROOM, name="dl")
        async with RoomClient(server.url, ROOM, token, reconnect=False) as room:
            await room.storage.upload("big.bin", os.urandom(size))
            before = _rss()
            streams = []
            async with asyncio.timeout(BOUND):
                for _ in range(10):
                    stream = await room.open_tool_stream("storage", "download")
                    await stream.send(binary_content({"kind": "start", "path": "big.bin",
                                                      "chunk_size": 65536}))
                    await stream.opened()
                    start = await stream.receive()
                    assert start.header["headers"]["size"] == size
                    streams.append(stream)
            # Ten downloads of a 40 MB file open at once, none pulled: far below one copy.
            assert _rss() - before < 16 * MB
            for stream in streams:
                await stream.__aexit__(None, None, None)


async def test_a_large_file_round_trips_and_the_http_link_streams_it(tmp_path: Path):
    data = os.urandom(12 * MB + 12345)  # not a multiple of any chunk size
    async with RoomServer(data_dir=tmp_path / "data") as server:
        token = server.mint_token(room=ROOM, name="rt")
        async with RoomClient(server.url, ROOM, token, reconnect=False) as room:
            async with asyncio.timeout(BOUND):
                await room.storage.upload("f.bin", data)
                assert (await room.storage.download("f.bin")).data == data
                url = await room.storage.download_url("f.bin")
            async with httpx.AsyncClient(timeout=BOUND) as http, http.stream("GET", url) as response:
                assert response.status_code == 200
                assert int(response.headers["content-length"]) == len(data)
                digest = hashlib.sha256()
                async for piece in response.aiter_bytes():
                    digest.update(piece)
            assert digest.digest() == hashlib.sha256(data).digest()


async def test_a_download_reads_the_version_it_started_with(tmp_path: Path):
    old, new = os.urandom(3 * MB), os.urandom(2 * MB)
    async with RoomServer(data_dir=tmp_path / "data") as server:
        token = server.mint_token(room=ROOM, name="v")
        async with RoomClient(server.url, ROOM, token, reconnect=False) as room:
            await room.storage.upload("v.bin", old)
            async with asyncio.timeout(BOUND):
                stream = await room.open_tool_stream("storage", "download")
                async with stream:
                    await stream.send(binary_content({"kind": "start", "path": "v.bin",
                                                      "chunk_size": MB}))
                    await stream.opened()
                    await stream.receive()  # start
                    await room.storage.upload("v.bin", new, overwrite=True)  # replaced meanwhile
                    await room.storage.delete("v.bin")  # and then deleted
                    parts = []
                    while sum(map(len, parts)) < len(old):
                        await stream.send(binary_content({"kind": "pull"}))
                        parts.append((await stream.receive()).payload)
                assert b"".join(parts) == old
        # The replaced and deleted versions' blobs are gone once nothing reads them.
        assert list((tmp_path / "data" / "blobs").iterdir()) == []
