"""``tool_call_id``s: 32 hex digits, never the same twice in a room — across calls, clients and
reconnects (the server keys a streamed call's chunks by its id)."""

from __future__ import annotations

import asyncio
import random
import re

from localmesh.worker.backoff import Backoff
from localmesh.worker.room import RoomClient, ToolCallIds

FAST = {"reconnect_backoff": Backoff(base=0.01, cap=0.05, rng=random.Random(1))}
HEX32 = re.compile(r"[0-9a-f]{32}")


def test_ids_are_32_hex_digits_and_unique_within_and_across_generators() -> None:
    generators = [ToolCallIds() for _ in range(20)]
    ids = [generator.next() for generator in generators for _ in range(500)]
    assert all(HEX32.fullmatch(call_id) for call_id in ids)
    assert len(set(ids)) == len(ids)
    assert len({generator.prefix for generator in generators}) == len(generators)


async def stream_ids(room: RoomClient, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        async with await room.open_tool_stream("storage", "download") as stream:
            ids.append(stream.tool_call_id)
    return ids


async def test_ids_stay_unique_across_clients_and_a_reconnect(server, connect, room_name) -> None:
    room = await connect("first", **FAST)
    other = await connect("second")
    ids = await stream_ids(room, 3) + await stream_ids(other, 3)
    assert await server.drop_connections(room_name) >= 1
    await asyncio.wait_for(room.wait_connected(reconnects=1), 5)
    await asyncio.wait_for(other.wait_connected(reconnects=1), 5)
    ids += await stream_ids(room, 3) + await stream_ids(other, 3)
    assert all(HEX32.fullmatch(call_id) for call_id in ids)
    assert len(set(ids)) == len(ids) == 12


async def test_concurrent_streams_of_one_client_each_get_their_own_chunks(room: RoomClient) -> None:
    files = {f"ids/{n}.bin": bytes([n]) * (3000 + n) for n in range(8)}
    for path, data in files.items():
        await room.storage.upload(path, data)
    downloads = await asyncio.gather(*(room.storage.download(path) for path in files))
    assert [download.data for download in downloads] == list(files.values())
