"""Connections that never finish their HTTP request cannot lock anyone out."""

from __future__ import annotations

import asyncio
import resource
import socket
import time
from urllib.parse import urlparse

import pytest
from harness import Figure, ServedRoom

from localmesh.fixtures.sdk import connect_meshagent_room

HALF_OPEN = 1100


def _open_half(url: str, count: int) -> list[socket.socket]:
    parts = urlparse(url)
    socks = []
    for _ in range(count):
        sock = socket.create_connection((parts.hostname, parts.port), timeout=5)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ")  # never finished
        socks.append(sock)
    return socks


def _closed_by_server(socks: list[socket.socket]) -> int:
    closed = 0
    for sock in socks:
        sock.setblocking(False)
        try:
            if sock.recv(1) == b"":
                closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    return closed


@pytest.mark.slow
async def test_1100_half_open_connections_lock_out_nobody(tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096 <= hard or hard == resource.RLIM_INFINITY:
        resource.setrlimit(resource.RLIMIT_NOFILE, (4096, hard))
    # The server runs with the common limit of 1,024 open files, which it cannot raise.
    async with ServedRoom(tmp_path, "handshake_timeout=3", nofile=1024) as served:
        before = served.rss()
        socks = await asyncio.to_thread(_open_half, served.url, HALF_OPEN)
        try:
            started = time.monotonic()
            assert await served.healthz(timeout=5) == 200
            health_s = time.monotonic() - started
            async with asyncio.timeout(10):
                async with connect_meshagent_room(served.room_url("r"), served.token("r", "ok")) as room:
                    await room.queues.send(name="q", message={"ok": 1})
                    assert await room.queues.receive(name="q", wait=False) == {"ok": 1}
            room_s = time.monotonic() - started
            early = await asyncio.to_thread(_closed_by_server, socks)
            # idle handshakes time out (3 s here): all of them are gone soon after
            async with asyncio.timeout(15):
                while (gone := await asyncio.to_thread(_closed_by_server, socks)) < HALF_OPEN:
                    await asyncio.sleep(0.5)
            all_gone_s = time.monotonic() - started
            peak = served.rss()
        finally:
            for sock in socks:
                sock.close()
        log = served.log.read_text()
    assert "Too many open files" not in log and len(log) < 1_000_000
    Figure(
        case=f"{HALF_OPEN:,} connections sending half an HTTP request (server: 1,024 open files)",
        abuser_got=f"{early} cut at once (past the cap), the rest after the 3 s handshake timeout"
                   f" (all {gone} gone in {all_gone_s:.1f} s)",
        target="/healthz and a room client still answer",
        rss_before_mb=before, rss_peak_mb=peak,
        extra={"healthz_s": round(health_s, 2), "room_round_trip_s": round(room_s, 2)},
    ).record().abuser_got += f"; /healthz in {health_s:.2f} s, room round trip by {room_s:.2f} s"
