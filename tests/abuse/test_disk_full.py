"""A full disk: writes refused with a clear error, while receive and delete still free space."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from harness import Figure
from meshagent.api import RoomException

from localmesh.emulator import RoomServer
from localmesh.fixtures.sdk import connect_meshagent_room

FULL = "the disk holding the room's data is full"


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 24 MB tmpfs (the suite runs as root, as CI does)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.slow
async def test_a_full_disk_still_lets_the_room_be_drained_and_cleaned(small_disk):
    async with RoomServer(data_dir=small_disk / "data") as server:
        token = server.mint_token(room="r", name="filler")
        async with connect_meshagent_room(server.room_url("r"), token) as room:
            await room.storage.upload(path="big.bin", data=bytes(2 * 1024 * 1024))
            sent = 0
            with pytest.raises(RoomException) as refused:
                async with asyncio.timeout(120):
                    while True:
                        await room.queues.send(name="q", message={"blob": "y" * 20_000, "n": sent})
                        sent += 1
            assert refused.value.code == 1008 and FULL in str(refused.value)
            with pytest.raises(RoomException, match=FULL):
                await room.storage.upload(path="more.bin", data=bytes(100_000))
            received = [(await room.queues.receive(name="q", wait=False))["n"] for _ in range(20)]
            assert received == list(range(20))
            await room.storage.delete("big.bin")
            assert not await room.storage.exists(path="big.bin")
    Figure(case=f"disk full (24 MB tmpfs, {sent} messages of 20 KB)",
           abuser_got="send/upload: 1008 'the disk ... is full'; receive and storage.delete work",
           target="receive/delete still work").record()
