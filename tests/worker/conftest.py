"""Fixtures for the worker tests: a real in-process emulator and room clients joined to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import pytest
import pytest_asyncio

from localmesh.emulator import RoomServer
from localmesh.worker.room import RoomClient

ROOM = "worker-tests"


@pytest_asyncio.fixture
async def server() -> AsyncIterator[RoomServer]:
    # A short long-poll window keeps empty receives quick; tests never rely on its length.
    async with RoomServer(data_dir=None, long_poll_window=2.0) as running:
        yield running


@pytest_asyncio.fixture
async def connect(server: RoomServer) -> AsyncIterator[Callable[..., Awaitable[RoomClient]]]:
    """``await connect(name="x", room=ROOM, **client_options)`` -> a connected RoomClient."""
    async with AsyncExitStack() as stack:

        async def open_client(name: str = "tester", room: str = ROOM, **options) -> RoomClient:
            token = server.mint_token(room=room, name=name)
            client = RoomClient(server.url, room, token, **options)
            return await stack.enter_async_context(client)

        yield open_client


@pytest_asyncio.fixture
async def room(connect) -> RoomClient:
    return await connect("tester")


@pytest.fixture
def room_name() -> str:
    return ROOM
