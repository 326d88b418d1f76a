"""Several clients upload, download, move and delete the same paths at once.

Invariants, whatever the interleaving: every file read back is exactly one complete
upload; the only errors are the documented, expected ones (not found, already exists);
the server logs no failure; nothing hangs.
"""

from __future__ import annotations

import asyncio
import logging
import random
from contextlib import AsyncExitStack

import pytest
from meshagent.api import RoomException

from localmesh.fixtures.sdk import connect_meshagent_room
from localmesh.protocol.error_codes import STORAGE_ALREADY_EXISTS, STORAGE_NOT_FOUND
from localmesh.worker.errors import RoomError
from localmesh.worker.room import RoomClient

pytestmark = pytest.mark.slow

ROOM = "chaos-storage"
BOUND = 20.0
PATHS = ["s/a.bin", "s/b.bin", "s/c.bin"]
EXPECTED_CODES = {STORAGE_NOT_FOUND, STORAGE_ALREADY_EXISTS}


def payload(tag: int, size: int) -> bytes:
    """Bytes that say which upload they are from, in every chunk (so a mix shows)."""
    head = f"<{tag:06d}>".encode()
    return (head * (size // len(head) + 1))[:size]


class Ours:
    def __init__(self, client: RoomClient) -> None:
        self.s = client.storage

    async def upload(self, path, data, overwrite):
        await self.s.upload(path, data, overwrite=overwrite)

    async def download(self, path):
        return (await self.s.download(path)).data

    async def move(self, a, b, overwrite):
        await self.s.move(a, b, overwrite=overwrite)

    async def delete(self, path):
        await self.s.delete(path)


class Sdk:
    def __init__(self, client) -> None:
        self.s = client.storage

    async def upload(self, path, data, overwrite):
        await self.s.upload(path=path, data=data, overwrite=overwrite)

    async def download(self, path):
        return (await self.s.download(path=path)).data

    async def move(self, a, b, overwrite):
        await self.s.move(source_path=a, destination_path=b, overwrite=overwrite)

    async def delete(self, path):
        await self.s.delete(path)


async def test_concurrent_storage_operations_on_the_same_paths(server, caplog):
    caplog.set_level(logging.ERROR, logger="localmesh")
    rng = random.Random(20261125)
    uploaded: dict[bytes, int] = {}  # every payload ever offered -> its tag
    unexpected: list[str] = []
    tag = 0

    async with AsyncExitStack() as stack:
        clients = []
        for i in range(3):
            token = server.mint_token(room=ROOM, name=f"ours{i}")
            clients.append(Ours(await stack.enter_async_context(RoomClient(server.url, ROOM, token))))
        for i in range(2):
            token = server.mint_token(room=ROOM, name=f"sdk{i}")
            sdk = await stack.enter_async_context(connect_meshagent_room(server.room_url(ROOM), token))
            clients.append(Sdk(sdk))

        def check(data: bytes, where: str) -> None:
            if data not in uploaded:
                unexpected.append(f"{where}: {len(data)} bytes matching no upload: {data[:24]!r}")

        async def one(client, op: str, args: tuple) -> None:
            try:
                if op == "download":
                    check(await client.download(*args), f"download {args}")
                else:
                    await getattr(client, op)(*args)
            except RoomError as error:
                if error.code not in EXPECTED_CODES:
                    unexpected.append(f"{op}{args}: {error!r}")
            except RoomException as error:
                if error.code not in EXPECTED_CODES:
                    unexpected.append(f"{op}{args}: sdk {error!r} code={error.code}")

        for _round in range(12):
            ops = []
            for client in clients:
                for _ in range(rng.randint(1, 3)):
                    op = rng.choice(["upload", "upload", "download", "move", "delete"])
                    if op == "upload":
                        tag += 1
                        data = payload(tag, rng.choice([0, 10, 70_000, 200_000]))
                        uploaded[data] = tag
                        args = (rng.choice(PATHS), data, rng.random() < 0.8)
                    elif op == "move":
                        a, b = rng.sample(PATHS, 2)
                        args = (a, b, rng.random() < 0.7)
                    else:
                        args = (rng.choice(PATHS),)
                    ops.append(one(client, op, args))
            async with asyncio.timeout(BOUND):
                await asyncio.gather(*ops)

        # At rest: every file is one complete upload.
        for path in PATHS:
            found = await server.state.store.read_file(ROOM, path)
            if found is not None:
                row, data = found
                assert row.size == len(data)
                check(data, f"at rest {path}")

    assert not unexpected, "\n".join(unexpected)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


async def test_racing_moves_writes_and_creates_stay_consistent():
    """Check-then-act races in the storage model, started in the same loop tick."""
    from localmesh.emulator.errors import RoomError as ModelError
    from localmesh.emulator.storage import Storage
    from localmesh.emulator.store import Store

    store = await Store.open(None)
    storage = Storage(store)
    try:
        async with asyncio.timeout(BOUND):
            await storage.write("r", "a", b"A", "x", overwrite=True)
            await storage.write("r", "b", b"B", "x", overwrite=True)
            # Two moves onto one destination: one wins, the other moves onto it (overwrite).
            results = await asyncio.gather(
                storage.move("r", "a", "c", overwrite=True),
                storage.move("r", "b", "c", overwrite=True),
                return_exceptions=True,
            )
            assert results == [None, None], results
            assert [f.path for f in await store.files_under("r", "")] == ["c"]
            # Two creates of one file without overwrite: exactly one succeeds, 3005 for the other.
            results = await asyncio.gather(
                storage.write("r", "n", b"1", "x", overwrite=False),
                storage.write("r", "n", b"2", "x", overwrite=False),
                return_exceptions=True,
            )
            assert results[0] is None and isinstance(results[1], ModelError), results
            assert results[1].code == STORAGE_ALREADY_EXISTS
            assert (await store.read_file("r", "n"))[1] == b"1"
            # A file and a file below it (the same path as a folder): never both.
            results = await asyncio.gather(
                storage.write("r", "d", b"D", "x", overwrite=False),
                storage.write("r", "d/e", b"E", "x", overwrite=False),
                return_exceptions=True,
            )
            assert results[0] is None and isinstance(results[1], ModelError), results
            assert [f.path for f in await store.files_under("r", "")] == ["c", "d", "n"]
    finally:
        await store.close()


async def test_racing_moves_over_the_wire_are_no_server_error(server, caplog):
    caplog.set_level(logging.ERROR, logger="localmesh")
    token = server.mint_token(room=ROOM, name="mover")
    async with RoomClient(server.url, ROOM, token) as room:
        async with asyncio.timeout(BOUND):
            for round_ in range(10):
                sources = [f"m{round_}/src{i}.txt" for i in range(4)]
                for i, path in enumerate(sources):
                    await room.storage.upload(path, payload(i, 100), overwrite=True)
                await asyncio.gather(*(
                    room.storage.move(path, f"m{round_}/dst.txt", overwrite=True) for path in sources
                ))
                assert [e.name for e in await room.storage.list(f"m{round_}")] == ["dst.txt"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
