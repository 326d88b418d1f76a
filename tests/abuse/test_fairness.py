"""One room's pipelined load must not hold up another room's clients."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time

import pytest
from harness import Figure, ServedRoom, p99_ms
from rawsocket import client_frame, invoke, open_upgraded

from localmesh.fixtures.sdk import connect_meshagent_room
from localmesh.protocol.wire import encode_message, pack

SENDS = int(os.environ.get("LOCALMESH_ABUSE_SENDS", "80000"))


def _pipelined_sends(count: int) -> bytes:
    frames = bytearray()
    for message_id in range(1, count + 1):
        header = invoke("queues", "send", {"name": "load", "message": {"n": message_id}})
        for frame in encode_message(message_id, "room.invoke_tool", pack(header)):
            frames += client_frame(frame, zero_mask=True)
    return bytes(frames)


def _drain(sock: socket.socket, stop: threading.Event, counts: list[int]) -> None:
    # Blocking reads (a timeout would apply to the sender's sendall on the same socket too);
    # the test ends them with shutdown().
    tail = b""
    while not stop.is_set():
        try:
            data = sock.recv(1 << 20)
        except OSError:
            return
        if not data:
            return
        # Each reply's header frame names its type; keep a tail so none is cut in two.
        window = tail + data
        counts[0] += window.count(b"__response__")
        tail = window[-11:]
        counts[0] -= tail.count(b"__response__")


@pytest.mark.slow
async def test_pipelined_load_in_one_room_does_not_hold_up_another(tmp_path):
    blob = await asyncio.to_thread(_pipelined_sends, SENDS)
    # The raw loader never answers pings: on a busy machine its load can outlast the ping
    # timeout (40 s), and the server would rightly drop it before the measurement ends.
    extra = ["ping_interval=600", *os.environ.get("LOCALMESH_ABUSE_LIMITS", "").split()]
    async with ServedRoom(tmp_path, *extra, in_memory=False) as served:
        async with connect_meshagent_room(served.room_url("b"), served.token("b", "bystander")) as room:
            async def round_trip() -> float:
                # one call: what a client in room B waits for
                start = time.perf_counter()
                await room.queues.send(name="b", message={"ping": True})
                return time.perf_counter() - start

            baseline = [await round_trip() for _ in range(50)]
            sock = await asyncio.to_thread(
                open_upgraded, served.room_url("a"), served.token("a", "loader"), rcvbuf=None)
            sock.settimeout(None)
            stop, answered = threading.Event(), [0]
            drainer = threading.Thread(target=_drain, args=(sock, stop, answered), daemon=True)
            drainer.start()
            before = served.rss()
            started = time.monotonic()
            sender = asyncio.create_task(asyncio.to_thread(sock.sendall, blob))
            samples: list[float] = []
            try:
                async with asyncio.timeout(120):
                    while answered[0] < SENDS:
                        samples.append(await round_trip())
                        await asyncio.sleep(0.005)
                await sender
                took = time.monotonic() - started
                peak = served.rss()
            finally:
                stop.set()
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()
    during, before_load = p99_ms(samples), p99_ms(baseline)
    # The target is 50 ms. On a machine busy with other work every latency grows, so the bound
    # also allows 5x room B's own p99 measured just before (issue 16 saw 1,400x: 2.8 s vs 2 ms).
    assert during < max(50.0, 5 * before_load), (
        f"room b's p99 was {during} ms during room a's load (baseline {before_load} ms)")
    Figure(
        case=f"{SENDS:,} pipelined queues.send in room A",
        abuser_got=f"all {SENDS:,} acknowledged in {took:.1f} s ({SENDS / took:,.0f}/s)",
        target="room B p99 < 50 ms",
        rss_before_mb=before, rss_peak_mb=peak, others_p99_ms=during,
        extra={"baseline_p99_ms": p99_ms(baseline), "room_b_round_trips": len(samples)},
    ).record()
