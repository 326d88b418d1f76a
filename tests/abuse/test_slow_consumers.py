"""Clients that stop reading: cut off, never waited on, and never holding up shutdown."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import time

import pytest
from harness import Figure, ServedRoom, p99_ms, timed_calls
from rawsocket import invoke, open_upgraded, send_request

from localmesh.fixtures.sdk import connect_meshagent_room

MB = 1_000_000
# Small enough that a stuck client fills its share in a second or two.
STUCK_LIMITS = ("outbox_bytes=1048576", "write_timeout=3", "ping_interval=1", "ping_timeout=2")


async def _fill_queue(room, count: int) -> None:
    for _ in range(count):
        await room.queues.send(name="big", message={"blob": "x" * MB})


def _stick(url: str, token: str, count: int) -> socket.socket:
    """A client that asks for ``count`` 1 MB messages and then never reads its socket."""
    sock = open_upgraded(url, token, rcvbuf=4096)
    for message_id in range(1, count + 1):
        send_request(sock, message_id, "room.invoke_tool",
                     invoke("queues", "receive", {"name": "big", "wait": False}))
    return sock


async def _wait_for_log(served: ServedRoom, pattern: str, timeout: float) -> float:
    start = time.monotonic()
    async with asyncio.timeout(timeout):
        while not re.search(pattern, served.log.read_text()):
            await asyncio.sleep(0.05)
    return time.monotonic() - start


@pytest.mark.slow
async def test_a_client_that_never_reads_holds_up_nobody_and_is_cut_off(tmp_path):
    async with ServedRoom(tmp_path, *STUCK_LIMITS) as served:
        token = served.token("r", "worker")
        async with connect_meshagent_room(served.room_url("r"), token) as room:
            await _fill_queue(room, 12)
            before = served.rss()
            stuck = await asyncio.to_thread(_stick, served.room_url("r"), served.token("r", "stuck"), 12)
            try:
                done = asyncio.Event()
                counter = iter(range(10**6))

                async def storage_round() -> None:
                    path = f"f{next(counter)}.txt"
                    await room.storage.upload(path=path, data=b"hello")
                    await room.storage.move(source_path=path, destination_path=path + ".moved")
                    await room.storage.delete(path + ".moved")

                async def stop_when_cut() -> float:
                    try:
                        return await _wait_for_log(served, r"dropping stuck", 30)
                    finally:
                        done.set()

                cut = asyncio.create_task(stop_when_cut())
                samples = await timed_calls(storage_round, done, at_least=30, limit_s=40)
                cut_after = await cut
                peak = served.rss()
            finally:
                stuck.close()
            # the room works on, for a new participant too
            async with connect_meshagent_room(served.room_url("r"), served.token("r", "late")) as late:
                await late.queues.send(name="ok", message={"n": 1})
                assert await late.queues.receive(name="ok", wait=False) == {"n": 1}
        reason = re.search(r"dropping stuck participant stuck: (.*)", served.log.read_text()).group(1)
        worst = max(samples)
        assert worst < 1.0, f"a storage round took {worst:.2f} s with a stuck participant"
        Figure(
            case="a participant that never reads (12 x 1 MB replies pending)",
            abuser_got=f"cut off after {cut_after:.1f} s: {reason}",
            target="others' storage calls < 1 s",
            rss_before_mb=before, rss_peak_mb=peak, rss_after_mb=served.rss(),
            others_p99_ms=p99_ms(samples),
            extra={"worst_storage_round_ms": round(worst * 1000, 1), "rounds": len(samples)},
        ).record()


@pytest.mark.slow
@pytest.mark.parametrize("signals", [1, 2])
async def test_shutdown_with_a_stuck_client(tmp_path, signals):
    # Default limits here: the stuck client would only be cut after write_timeout (10 s).
    async with ServedRoom(tmp_path, "outbox_bytes=1048576") as served:
        async with connect_meshagent_room(served.room_url("r"), served.token("r", "filler")) as room:
            await _fill_queue(room, 12)
        stuck = await asyncio.to_thread(_stick, served.room_url("r"), served.token("r", "stuck"), 12)
        try:
            await asyncio.sleep(1.0)  # let its replies fill every buffer on the way
            start = time.monotonic()
            served.terminate(signal.SIGTERM)
            if signals == 2:
                await asyncio.sleep(0.2)
                served.terminate(signal.SIGTERM)
            code = await asyncio.wait_for(served.process.wait(), 30)
            took = time.monotonic() - start
        finally:
            stuck.close()
        assert code == 0
        bound = 5.0 if signals == 1 else 1.5
        assert took < bound, f"exit took {took:.2f} s"
        Figure(
            case=f"SIGTERM x{signals} with a client that never reads",
            abuser_got="connection cut",
            target="exit < 5 s" if signals == 1 else "exit at once on the second signal",
            extra={"exit_s": round(took, 2)},
        ).record().abuser_got += f"; server exited in {took:.2f} s"


@pytest.mark.slow
async def test_silent_websockets_are_pinged_out(tmp_path):
    async with ServedRoom(tmp_path, "ping_interval=0.5", "ping_timeout=0.5") as served:
        socks = [await asyncio.to_thread(open_upgraded, served.room_url("r"),
                                         served.token("r", f"silent{i}"), rcvbuf=None)
                 for i in range(50)]
        start = time.monotonic()

        def closed_by_server(sock: socket.socket) -> bool:
            sock.settimeout(10)
            try:
                while sock.recv(65536):
                    pass  # pings and the close frame; a silent client never answers
                return True
            except (TimeoutError, OSError):
                return False
            finally:
                sock.close()

        results = await asyncio.gather(*(asyncio.to_thread(closed_by_server, s) for s in socks))
        took = time.monotonic() - start
        assert all(results)
        Figure(
            case="50 silent websockets (never answer pings)",
            abuser_got=f"closed by the server after {took:.1f} s (ping every 0.5 s, timeout 0.5 s)",
            target="pings with a timeout",
        ).record()


def _flood_bad_requests(url: str, token: str, count: int) -> int:
    """A client that sends ``count`` requests the server must refuse (an unknown message
    type: each gets an error reply) and never reads; returns how many it got to send."""
    sock = open_upgraded(url, token, rcvbuf=4096)
    sock.settimeout(15)
    sent = 0
    try:
        for message_id in range(1, count + 1):
            send_request(sock, message_id, "no.such_type", {})
            sent += 1
    except OSError:
        pass  # the server stopped reading, then cut the connection
    finally:
        sock.close()
    return sent


@pytest.mark.slow
async def test_a_flood_of_refused_requests_from_a_client_that_never_reads(tmp_path):
    # Each refusal is an error reply queued for a client that does not read them: once its
    # outbox is full the server stops reading its requests (they stay in its socket), so
    # memory stays flat, and it is cut off after write_timeout; the room goes on.
    async with ServedRoom(tmp_path, *STUCK_LIMITS) as served:
        before = served.rss()
        flood = asyncio.create_task(asyncio.to_thread(
            _flood_bad_requests, served.room_url("r"), served.token("r", "flood"), 200_000))
        cut_after = await _wait_for_log(served, r"dropping stuck participant flood", 30)
        sent = await flood
        async with connect_meshagent_room(served.room_url("r"), served.token("r", "ok")) as room:
            await room.queues.send(name="q", message={"n": 1})
            assert await room.queues.receive(name="q", wait=False) == {"n": 1}
        peak, after = served.peak_rss(), served.rss()
    assert sent < 200_000, "the server read every request of a client that reads nothing"
    assert peak - before < 64, f"RSS rose from {before} to {peak} MB"
    Figure(
        case="200,000 refused requests from a client that never reads",
        abuser_got=f"reading stopped after {sent:,} requests; cut off after {cut_after:.1f} s",
        target="RSS grows < 64 MB; the room works on",
        rss_before_mb=before, rss_peak_mb=peak, rss_after_mb=after,
    ).record()
