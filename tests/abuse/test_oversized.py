"""Oversized and unfinished messages: refused as they arrive, never buffered."""

from __future__ import annotations

import asyncio
import time

import pytest
import websockets
from harness import Figure, MiB, ServedRoom
from meshagent.api import RoomException

from localmesh.emulator import RoomServer
from localmesh.fixtures.sdk import connect_meshagent_room

PROMPT = 20.0


def _header(message_id: int, count: int, type: str = "room.invoke_tool") -> bytes:
    return message_id.to_bytes(8, "big") + (0).to_bytes(4, "big") + count.to_bytes(4, "big") + type.encode()


def _data(message_id: int, index: int, payload: bytes) -> bytes:
    return message_id.to_bytes(8, "big") + index.to_bytes(4, "big") + payload


async def test_a_17_mb_send_from_the_real_sdk_gets_an_error_and_later_calls_work():
    async with RoomServer() as server:
        token = server.mint_token(room="r", name="big-sender")
        async with connect_meshagent_room(server.room_url("r"), token) as room:
            started = time.monotonic()
            with pytest.raises(RoomException) as raised:
                async with asyncio.timeout(PROMPT):
                    await room.queues.send(name="q", message={"blob": "x" * (17 * MiB)})
            assert "exceeds the limit" in str(raised.value)
            # the same connection goes on working
            async with asyncio.timeout(PROMPT):
                await room.queues.send(name="q", message={"n": 1})
                assert await room.queues.receive(name="q", wait=False) == {"n": 1}
            Figure(
                case="17 MB queues.send from the real SDK",
                abuser_got=f"RoomException 1002 in {time.monotonic() - started:.1f} s;"
                           " next call on the same connection works",
                target="error reply, connection stays up",
            ).record()


async def _unfinished_abuser(url: str, token: str, packets: int, packet_bytes: int) -> str:
    """Announce a 4-packet message, then send huge packets without ever finishing it."""
    async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {token}"},
                                  max_size=None) as ws:
        await ws.send(_header(1, 4))
        got = ""
        try:
            for index in range(1, packets + 1):
                await ws.send(_data(1, min(index, 4), bytes(packet_bytes)))
        except websockets.ConnectionClosed as closed:
            got = f"closed {closed.rcvd.code if closed.rcvd else 'without a close frame'}"
        return got or "nothing (still open)"


@pytest.mark.slow
async def test_unfinished_oversized_messages_do_not_grow_the_server(tmp_path):
    async with ServedRoom(tmp_path) as served:
        before = served.rss()
        peak = before
        results = []
        # Three connections, each announcing 4 packets and sending 48 x 8 MiB (issue 16: +1.2 GB).
        tasks = [asyncio.create_task(_unfinished_abuser(
            served.room_url("r"), served.token("r", f"abuser{i}"), 48, 8 * MiB)) for i in range(3)]
        while not all(task.done() for task in tasks):
            peak = max(peak, served.rss())
            await asyncio.sleep(0.05)
        results = [task.result() for task in tasks]
        # And ones that stay inside the frame limit but announce far more than the message limit.
        async with websockets.connect(served.room_url("r"), additional_headers={
                "Authorization": f"Bearer {served.token('r', 'stall')}"}, max_size=None) as ws:
            await ws.send(_header(7, 20_000))  # 20 MB announced: refused at the header
            for index in range(1, 2001):
                await ws.send(_data(7, index, bytes(1024)))
            peak = max(peak, served.rss())
            assert await served.healthz() == 200
        after = served.rss()
        assert all(result.startswith("closed 1009") for result in results), results
        assert peak - before < 64, (before, peak)
        Figure(
            case="3 connections x 48 x 8 MiB packets of an unfinished message",
            abuser_got=f"close 1009 (frame over the room frame limit) on each: {results[0]}",
            target="RSS grows < 64 MB",
            rss_before_mb=before, rss_peak_mb=peak, rss_after_mb=after,
        ).record()
