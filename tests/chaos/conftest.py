"""Fixtures for the chaos tests: an in-memory emulator with a short long-poll window."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from localmesh.emulator import RoomServer


@pytest_asyncio.fixture
async def server() -> AsyncIterator[RoomServer]:
    async with RoomServer(data_dir=None, long_poll_window=0.5) as running:
        yield running
