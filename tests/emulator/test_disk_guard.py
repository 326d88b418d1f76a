"""On a full disk the guard gives back the reserve and the WAL's space before freeing calls retry."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest

from localmesh.emulator.calls import Call
from localmesh.emulator.diskfull import RESERVE_NAME, DiskGuard
from localmesh.emulator.errors import RoomError
from localmesh.emulator.store import Store


async def test_shrink_wal_gives_the_wal_files_space_back(tmp_path: Path) -> None:
    store = await Store.open(tmp_path)
    try:
        for n in range(200):
            store.append(n + 1, "r", "q", "x" * 4000)
        await store.flushed()
        wal = tmp_path / "localmesh.db-wal"
        assert wal.stat().st_size > 500_000
        store.shrink_wal()
        assert wal.stat().st_size == 0
        assert len(await store.messages("r", "q")) == 200  # nothing lost on the way
    finally:
        await store.close()


async def test_a_full_disk_releases_the_reserve_and_makes_room_then_retries_a_freeing_call(
        tmp_path: Path) -> None:
    made_room: list[bool] = []
    guard = DiskGuard(tmp_path, reserve_bytes=64 * 1024, make_room=lambda: made_room.append(True))
    assert (tmp_path / RESERVE_NAME).exists()
    attempts: list[int] = []

    async def receive(call: Call) -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise sqlite3.OperationalError("database or disk is full")
        return "taken"

    guarded = guard.wrap("queues", "receive", receive)
    assert await guarded(None) == "taken"  # type: ignore[arg-type]
    assert (len(attempts), made_room, guard.full) == (2, [True], True)
    assert not (tmp_path / RESERVE_NAME).exists()


async def test_a_call_that_adds_data_is_refused_without_making_room(tmp_path: Path) -> None:
    made_room: list[bool] = []
    guard = DiskGuard(tmp_path, reserve_bytes=64 * 1024, make_room=lambda: made_room.append(True))

    async def send(call: Call) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    with pytest.raises(RoomError, match="the disk holding the room's data is full"):
        await guard.wrap("queues", "send", send)(SimpleNamespace(toolkit="queues", tool="send"))
    assert (made_room, guard.full) == ([], True)  # the WAL's space is kept for freeing calls
