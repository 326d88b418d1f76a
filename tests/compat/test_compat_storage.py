"""The real SDK's ``room.storage`` against the emulator."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from urllib.parse import quote

import httpx
import pytest
from compat_helpers import PROMPT
from meshagent.api import RoomException
from targets import on_localmesh

pytestmark = pytest.mark.compat

ROOM = "r"


async def test_upload_stat_list_download(client):
    async with client(ROOM) as room:
        await room.storage.upload(path="docs/readme.txt", data=b"hello\n")
        await room.storage.upload(path="docs/sub/deep.bin", data=bytes(range(256)))
        await room.storage.upload(path="top.json", data=b"{}")

        entry = await room.storage.stat(path="docs/readme.txt")
        assert entry is not None
        assert (entry.name, entry.is_folder, entry.size) == ("readme.txt", False, 6)
        assert entry.created_at is not None and entry.updated_at is not None
        folder = await room.storage.stat(path="docs")
        assert folder is not None and folder.is_folder and folder.name == "docs"
        assert await room.storage.stat(path="nope.txt") is None

        root = {(e.name, e.is_folder) for e in await room.storage.list(path="")}
        assert root == {("docs", True), ("top.json", False)}
        docs = {(e.name, e.is_folder, e.size) for e in await room.storage.list(path="docs")}
        assert docs == {("readme.txt", False, 6), ("sub", True, None)}
        assert await room.storage.list(path="no/such/folder") == []

        file = await room.storage.download(path="docs/readme.txt")
        assert (file.data, file.name, file.mime_type) == (b"hello\n", "readme.txt", "text/plain")
        assert (await room.storage.download(path="docs/sub/deep.bin")).data == bytes(range(256))


async def test_exists(client):
    async with client(ROOM) as room:
        await room.storage.upload(path="a/b/c.txt", data=b"x")
        assert await room.storage.exists(path="a/b/c.txt")
        assert await room.storage.exists(path="a/b")  # folders exist through their files
        assert await room.storage.exists(path="a")
        assert not await room.storage.exists(path="a/b/d.txt")
        assert not await room.storage.exists(path="z")


async def test_move_file_and_folder(client):
    async with client(ROOM) as room:
        await room.storage.upload(path="src/one.txt", data=b"1")
        await room.storage.upload(path="src/inner/two.txt", data=b"2")
        await room.storage.move(source_path="src/one.txt", destination_path="dst/uno.txt")
        assert not await room.storage.exists(path="src/one.txt")
        assert (await room.storage.download(path="dst/uno.txt")).data == b"1"

        await room.storage.move(source_path="src", destination_path="moved")
        assert not await room.storage.exists(path="src")
        assert (await room.storage.download(path="moved/inner/two.txt")).data == b"2"

        await room.storage.upload(path="taken.txt", data=b"old")
        with pytest.raises(RoomException) as raised:
            await room.storage.move(source_path="dst/uno.txt", destination_path="taken.txt")
        assert raised.value.code == 3005
        await room.storage.move(
            source_path="dst/uno.txt", destination_path="taken.txt", overwrite=True
        )
        assert (await room.storage.download(path="taken.txt")).data == b"1"


async def test_delete_file_and_folders(client):
    async with client(ROOM) as room:
        await room.storage.upload(path="f/a.txt", data=b"a")
        await room.storage.upload(path="f/g/b.txt", data=b"b")
        await room.storage.upload(path="keep.txt", data=b"k")

        await room.storage.delete("f/a.txt")
        assert not await room.storage.exists(path="f/a.txt")

        with pytest.raises(RoomException) as raised:
            await room.storage.delete("f")
        assert raised.value.code == 3002
        assert await room.storage.exists(path="f/g/b.txt")  # a refused delete removes nothing

        await room.storage.delete("f", recursive=True)
        assert not await room.storage.exists(path="f")
        assert [e.name for e in await room.storage.list(path="")] == ["keep.txt"]

        with pytest.raises(RoomException) as raised:
            await room.storage.delete("f/a.txt")
        assert raised.value.code == 3001


@pytest.mark.parametrize("path", ["plain.bin", "dir/my file #1?&x=y%20.txt", "ünï/cödé ✓.txt"])
async def test_download_url_serves_the_bytes(server, client, path):
    data = os.urandom(3000)
    async with client(ROOM) as room:
        await room.storage.upload(path=path, data=data)
        url = await room.storage.download_url(path=path)
        async with httpx.AsyncClient(timeout=PROMPT) as http:
            response = await http.get(url)
            assert response.status_code == 200, response.text
            assert response.content == data
            if not on_localmesh(server):
                return  # how a real link names the file and signs itself is its own business
            disposition = response.headers["content-disposition"]
            assert disposition.endswith("filename*=UTF-8''" + quote(path.rpartition("/")[2], safe=""))
            # a link is for one file: tampering with the signature is refused
            forged = await http.get(url[: url.index("sig=") + 4] + "not-a-signature")
            assert forged.status_code == 403


async def test_download_url_of_missing_file_is_3001(client):
    async with client(ROOM) as room:
        with pytest.raises(RoomException) as raised:
            await room.storage.download_url(path="ghost.txt")
        assert raised.value.code == 3001


async def test_zero_byte_file_round_trips(client):
    async with client(ROOM) as room:
        await room.storage.upload(path="empty.dat", data=b"")
        file = await room.storage.download(path="empty.dat")
        assert file.data == b""
        entry = await room.storage.stat(path="empty.dat")
        assert entry is not None and entry.size == 0


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_upload_stream_of_unknown_size_and_download_stream(client):
    data = os.urandom(200_000)
    async with client(ROOM) as room:
        # size unknown: the server pulls until the client closes its side
        await room.storage.upload_stream(path="streamed.bin", chunks=_chunks(data, 7000))
        received = bytearray()
        start_headers = None
        async for chunk in room.storage.download_stream(path="streamed.bin", chunk_size=10_000):
            if chunk.headers.get("kind") == "start":
                start_headers = chunk.headers
            else:
                assert len(chunk.data) <= 10_000
                received += chunk.data
        assert start_headers is not None and start_headers["size"] == len(data)
        assert bytes(received) == data

        # an empty stream of unknown size is a zero-byte file
        await room.storage.upload_stream(path="nothing.bin", chunks=_chunks(b"", 1))
        assert (await room.storage.download(path="nothing.bin")).data == b""


async def test_upload_stream_with_known_size(client):
    data = os.urandom(150_001)
    async with client(ROOM) as room:
        await room.storage.upload_stream(
            path="sized.bin", chunks=_chunks(data, 4096), size=len(data), overwrite=True
        )
        assert (await room.storage.download(path="sized.bin")).data == data


@pytest.mark.slow
async def test_fifty_megabyte_file_round_trips(client):
    data = os.urandom(50 * 1024 * 1024)
    async with client(ROOM) as room:
        async with asyncio.timeout(120):
            await room.storage.upload(path="big/blob.bin", data=data)
            entry = await room.storage.stat(path="big/blob.bin")
            assert entry is not None and entry.size == len(data)
            got = await room.storage.download(path="big/blob.bin")
        assert len(got.data) == len(data)
        assert hashlib.sha256(got.data).digest() == hashlib.sha256(data).digest()


@pytest.mark.parametrize(
    "path", ["../escape.txt", "a/../../etc/passwd", "a//b.txt", "./..", "", "/", "x/./y",
             "back\\slash", "ctl\x01.txt", ".meshagent-upload-x", "d/.meshagent-directory"],
)
async def test_bad_paths_are_refused_with_3004(client, path):
    async with client(ROOM) as room:
        with pytest.raises(RoomException) as raised:
            await room.storage.upload(path=path, data=b"x")
        assert raised.value.code == 3004, raised.value
        with pytest.raises(RoomException) as raised:
            await room.storage.download(path=path)
        assert raised.value.code == 3004, raised.value
        # nothing got written anywhere
        assert await room.storage.list(path="") == []


@pytest.mark.parametrize("path", ["..", "../x", "a/../b"])
async def test_dot_dot_refused_by_every_operation(client, path):
    async with client(ROOM) as room:
        for call in (
            room.storage.exists(path=path),
            room.storage.stat(path=path),
            room.storage.list(path=path),
            room.storage.delete(path, recursive=True),
            room.storage.download_url(path=path),
            room.storage.move(source_path=path, destination_path="ok.txt"),
            room.storage.move(source_path="ok.txt", destination_path=path),
        ):
            with pytest.raises(RoomException) as raised:
                await call
            assert raised.value.code == 3004, raised.value


async def test_upload_without_overwrite_onto_existing_file_is_3005(client):
    async with client(ROOM) as room:
        await room.storage.upload(path="once.txt", data=b"first")
        with pytest.raises(RoomException) as raised:
            await room.storage.upload(path="once.txt", data=b"second")
        assert raised.value.code == 3005
        assert (await room.storage.download(path="once.txt")).data == b"first"
        await room.storage.upload(path="once.txt", data=b"second", overwrite=True)
        assert (await room.storage.download(path="once.txt")).data == b"second"


async def test_download_of_missing_file_is_3001(client):
    async with client(ROOM) as room:
        with pytest.raises(RoomException) as raised:
            await room.storage.download(path="missing.txt")
        assert raised.value.code == 3001


async def test_file_events_reach_another_client(client):
    async with client(ROOM, name="writer") as writer, client(ROOM, name="watcher") as watcher:
        events: asyncio.Queue[tuple[str, dict]] = asyncio.Queue()

        def recorder(kind: str):
            return lambda **kwargs: events.put_nowait((kind, kwargs))

        for kind in ("file.updated", "file.moved", "file.deleted"):
            watcher.storage.on(kind, recorder(kind))
        writer_id = writer.local_participant.id

        async def next_event() -> tuple[str, dict]:
            async with asyncio.timeout(PROMPT):
                return await events.get()

        await writer.storage.upload(path="ev/a.txt", data=b"a")
        assert await next_event() == (
            "file.updated", {"path": "ev/a.txt", "participant_id": writer_id})
        await writer.storage.move(source_path="ev/a.txt", destination_path="ev/b.txt")
        assert await next_event() == ("file.moved", {
            "source_path": "ev/a.txt", "destination_path": "ev/b.txt",
            "participant_id": writer_id})
        await writer.storage.delete("ev/b.txt")
        assert await next_event() == (
            "file.deleted", {"path": "ev/b.txt", "participant_id": writer_id})
        # a refused write sends no event
        await writer.storage.upload(path="ev/c.txt", data=b"c")
        assert (await next_event())[0] == "file.updated"
        with pytest.raises(RoomException):
            await writer.storage.upload(path="ev/c.txt", data=b"again")
        await writer.storage.delete("ev/c.txt")
        assert (await next_event())[1]["path"] == "ev/c.txt"
        assert events.empty()


async def test_rooms_do_not_share_storage_or_queues(server, token, client):
    async with client("one") as one, client("two") as two:
        await one.storage.upload(path="secret.txt", data=b"one's")
        await one.queues.send(name="q", message={"room": "one"})
        assert not await two.storage.exists(path="secret.txt")
        assert await two.storage.list(path="") == []
        with pytest.raises(RoomException) as raised:
            await two.storage.download(path="secret.txt")
        assert raised.value.code == 3001
        assert await two.queues.list() == []
        assert await two.queues.receive(name="q", wait=False) is None
        assert await one.queues.receive(name="q", wait=False) == {"room": "one"}
        # a download link of room one does not open room two's file of the same name
        await two.storage.upload(path="secret.txt", data=b"two's")
        url = await one.storage.download_url(path="secret.txt")
        async with httpx.AsyncClient(timeout=PROMPT) as http:
            assert (await http.get(url)).content == b"one's"
            if on_localmesh(server):  # localmesh's links name the room in their path
                assert (await http.get(url.replace("/one/", "/two/"))).status_code == 403
