"""A real ``localmesh serve`` process keeps queues and files across a SIGTERM restart."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import localmesh_serve
import pytest
from localmesh_serve import Served, free_port, localmesh_env
from meshagent.api import ApiScope, ParticipantToken, RoomClient
from meshagent.api.websocket_protocol import WebSocketClientProtocol

pytestmark = [pytest.mark.compat, pytest.mark.slow]

ROOM = "persist"
SHUTDOWN = 10.0  # seconds SIGTERM may take


@asynccontextmanager
async def serve(data_dir: Path, port: int, *extra: str) -> AsyncIterator[Served]:
    log = data_dir.parent / f"serve-{port}-{time.monotonic_ns()}.log"
    async with localmesh_serve.serve(*extra, data_dir=data_dir, port=port, log=log,
                                     env={**os.environ, "HOME": str(data_dir.parent)},
                                     stop_timeout=SHUTDOWN) as served:
        yield served


async def _api_key(data_dir: Path) -> str:
    return (await localmesh_env(data_dir))["MESHAGENT_API_KEY"]


def _token(api_key: str, name: str) -> str:
    token = ParticipantToken(name=name)
    token.add_room_grant(ROOM)
    token.add_role_grant("agent")
    token.add_api_grant(ApiScope.agent_default())
    return token.to_jwt(api_key=api_key)


def _client(served: Served, token: str) -> RoomClient:
    protocol = WebSocketClientProtocol(url=f"ws://127.0.0.1:{served.port}/rooms/{ROOM}",
                                       token=token)
    return RoomClient(protocol_factory=protocol.create_factory())


async def test_state_survives_sigterm_and_restart(tmp_path: Path):
    data_dir = tmp_path / "data"
    blob = os.urandom(300_000)
    messages = [{"n": i, "text": f"message {i} ✓"} for i in range(5)]
    port = free_port()

    async with serve(data_dir, port, "--long-poll-window", "60") as first:
        api_key = await _api_key(data_dir)
        token = _token(api_key, "before")
        async with _client(first, token) as room:
            for message in messages:
                await room.queues.send(name="jobs", message=message)
            await room.queues.open(name="empty-but-kept")
            await room.storage.upload(path="docs/blob.bin", data=blob)
            await room.storage.upload(path="docs/zero.txt", data=b"")
            await room.storage.upload(path="notes ✓.txt", data="ünïcode".encode())
            await room.storage.upload(path="gone.txt", data=b"x")
            await room.storage.delete("gone.txt")
            assert await room.queues.receive(name="jobs", wait=False) == messages[0]

        # a client still long-polling must not hold up the shutdown
        async with _client(first, _token(api_key, "lingering")) as lingering:
            pending = asyncio.create_task(lingering.queues.receive(name="idle", wait=True))
            await lingering.queues.list()  # the receive is in flight on the server by now
            started = time.monotonic()
            assert await first.stop() == 0, first.log.read_text()
            assert time.monotonic() - started < SHUTDOWN
            with pytest.raises(Exception):  # noqa: B017 - the SDK fails it on the close
                async with asyncio.timeout(SHUTDOWN):
                    await pending

    async with serve(data_dir, port) as second:
        assert await _api_key(data_dir) == api_key
        # the old token still verifies: the key was kept in the data dir
        async with _client(second, token) as room:
            sizes = {q.name: q.size for q in await room.queues.list()}
            assert sizes["jobs"] == len(messages) - 1
            assert sizes["empty-but-kept"] == 0
            for message in messages[1:]:
                assert await room.queues.receive(name="jobs", wait=False) == message
            assert await room.queues.receive(name="jobs", wait=False) is None

            assert (await room.storage.download(path="docs/blob.bin")).data == blob
            assert (await room.storage.download(path="docs/zero.txt")).data == b""
            assert (await room.storage.download(path="notes ✓.txt")).data == "ünïcode".encode()
            assert not await room.storage.exists(path="gone.txt")
            names = sorted(e.name for e in await room.storage.list(path=""))
            assert names == ["docs", "notes ✓.txt"]
        assert await second.stop() == 0, second.log.read_text()
