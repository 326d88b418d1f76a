"""A 1 GB upload and ten downloads of a 100 MB file that are never pulled: the server's
memory stays flat (files stream through blob files; nothing is read whole)."""

from __future__ import annotations

import asyncio

import pytest
from harness import Figure, MiB, ServedRoom

from localmesh.protocol.wire import binary_content
from localmesh.worker.room import RoomClient

RSS_BOUND_MB = 300
BOUND = 120.0


@pytest.mark.slow
async def test_a_1_gb_upload_and_ten_unpulled_100_mb_downloads_keep_memory_flat(tmp_path):
    async with ServedRoom(tmp_path, in_memory=False) as served:
        before = served.rss()
        async with RoomClient(served.url, "r", served.token("r", "big"), reconnect=False) as room:
            async with asyncio.timeout(BOUND):
                # bytes(n) is calloc'd zero pages: cheap for the test process, 1 GiB on the wire.
                await room.storage.upload("huge.bin", bytes(1024 * MiB))
                entry = await room.storage.stat("huge.bin")
                assert entry is not None and entry.size == 1024 * MiB
                after_upload = served.peak_rss()
                await room.storage.upload("film.bin", bytes(100 * MiB))
                streams = []
                for _ in range(10):
                    stream = await room.open_tool_stream("storage", "download")
                    await stream.send(binary_content({"kind": "start", "path": "film.bin",
                                                      "chunk_size": MiB}))
                    await stream.opened()
                    start = await stream.receive()  # the size; then nothing is ever pulled
                    assert start.header["headers"]["size"] == 100 * MiB
                    streams.append(stream)
                still = served.rss()
                for stream in streams:
                    await stream.__aexit__(None, None, None)
        peak = served.peak_rss()
    assert peak < RSS_BOUND_MB, f"server peak RSS {peak} MB"
    Figure(
        case="a 1 GB upload, then 10 downloads of a 100 MB file opened and never pulled",
        abuser_got=f"stored; server peak RSS {after_upload} MB after the upload, {still} MB with"
                   " the 10 downloads open",
        target=f"server RSS < {RSS_BOUND_MB} MB", rss_before_mb=before, rss_peak_mb=peak,
    ).record()
