"""The client's lean read path (worker/lean_websocket.py) and lock-free writes, against a raw
websocket server on 127.0.0.1: frames split anywhere, pings, closes, protocol errors, orphans."""

from __future__ import annotations

import asyncio

import pytest
from raw_room_server import (
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    RawRoomServer,
    close_payload,
    greeting,
    server_frame,
)
from websockets.asyncio.client import connect

from localmesh.protocol.loop_turn import ALWAYS_BUSY
from localmesh.protocol.wire import encode_message, json_content, unpack
from localmesh.protocol.ws_frames import OP_BINARY
from localmesh.worker.connection import TURN_BUFFER_MAX, Connection
from localmesh.worker.errors import ConnectionLost, RoomError
from localmesh.worker.lean_websocket import LeanClientConnection

BOUND = 10.0


class Inbox:
    """The binary messages a ``LeanClientConnection`` hands over, and a wait for a count."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self._changed = asyncio.Event()
        self.closed = asyncio.Event()

    def __call__(self, payload: bytes) -> None:
        self.received.append(payload)
        self._changed.set()

    async def until(self, count: int) -> list[bytes]:
        while len(self.received) < count:
            self._changed.clear()
            await self._changed.wait()
        return self.received


async def open_lean(url: str) -> tuple[LeanClientConnection, Inbox]:
    ws = await connect(url, create_connection=LeanClientConnection, compression=None)
    assert isinstance(ws, LeanClientConnection)
    inbox = Inbox()
    ws.attach(inbox, inbox.closed.set)
    return ws, inbox


def frames_of(payloads: list[bytes]) -> bytes:
    return b"".join(server_frame(OP_BINARY, payload) for payload in payloads)


def response(message_id: int, value: object) -> bytes:
    """The frames of a ``__response__`` carrying ``value`` as json content."""
    return b"".join(server_frame(OP_BINARY, packet) for packet in
                    encode_message(message_id, "__response__", json_content(value).pack()))


async def test_messages_behind_the_handshake_in_the_same_write_are_delivered_in_order() -> None:
    """Frames written with the 101 response start the lean path at the right byte; those read
    before a handler is attached are handed over first, in order."""
    payloads = [b"first", b"", b"x" * 200]
    async with RawRoomServer(first=frames_of(payloads)) as server:
        ws, inbox = await open_lean(server.url)
        async with asyncio.timeout(BOUND):
            assert await inbox.until(3) == payloads
        assert ws.lean
        await ws.close()
        assert inbox.closed.is_set()


@pytest.mark.parametrize("sizes", [[0, 1, 125], [126, 65535], [65536, 3]])
async def test_frames_split_at_every_byte_boundary_give_the_same_messages(sizes) -> None:
    """The bytes of several messages and a ping, fed in two pieces cut at every position and
    then one byte at a time: the same messages in order every time, and each ping answered."""
    payloads = [bytes([n % 251]) * n for n in sizes]
    wire = frames_of(payloads[:1]) + server_frame(OP_PING, b"p") + frames_of(payloads[1:])
    # every cut for short streams; for long ones, every cut in the headers and the tail
    cuts = (range(len(wire) + 1) if len(wire) < 400
            else [*range(0, 300), *range(len(wire) - 300, len(wire) + 1)])
    async with RawRoomServer() as server:
        ws, inbox = await open_lean(server.url)
        received = inbox.received
        for cut in cuts:
            received.clear()
            ws.data_received(wire[:cut])
            ws.data_received(wire[cut:])
            assert received == payloads, cut
        received.clear()
        for index in range(min(len(wire), 2000)):
            ws.data_received(wire[index : index + 1])
        ws.data_received(wire[2000:])
        assert received == payloads
        assert ws.lean
        async with asyncio.timeout(BOUND):
            for _ in range(len(cuts) + 1):
                assert await server.controls.get() == (OP_PONG, b"p")
        await ws.close()


async def test_a_ping_from_the_server_is_answered_while_lean() -> None:
    async with RawRoomServer() as server:
        ws, inbox = await open_lean(server.url)
        async with asyncio.timeout(BOUND):
            await server.connected.wait()
            server.write(server_frame(OP_PING, b"are you there") + frames_of([b"after"]))
            assert await server.controls.get() == (OP_PONG, b"are you there")
            assert await inbox.until(1) == [b"after"]
        assert ws.lean
        await ws.close()


async def test_a_masked_frame_from_the_server_fails_the_connection_with_1002() -> None:
    async with RawRoomServer(first=greeting()) as server:
        connection = await Connection.open(server.url, "token", timeout=BOUND)
        reply = await connection.send_request("room.invoke_tool", {"tool": "x"})
        async with asyncio.timeout(BOUND):
            await server.messages.get()
            server.write(server_frame(OP_BINARY, b"\x00" * 20, masked=True))
            opcode, payload = await server.controls.get()
            assert opcode == OP_CLOSE
            assert int.from_bytes(payload[:2], "big") == 1002
            assert b"must not be masked" in payload[2:]
            server.hang_up()
            await connection.closed.wait()
        assert connection.dropped
        assert "broke the websocket protocol" in connection.close_reason
        assert "1002" in connection.close_reason
        with pytest.raises(ConnectionLost):
            await reply


async def test_a_close_from_the_server_is_answered_and_ends_the_connection() -> None:
    async with RawRoomServer(first=greeting()) as server:
        connection = await Connection.open(server.url, "token", timeout=BOUND)
        async with asyncio.timeout(BOUND):
            server.write(server_frame(OP_CLOSE, close_payload(1001, "going away")))
            assert await server.controls.get() == (OP_CLOSE, close_payload(1001, "going away"))
            server.hang_up()
            await connection.closed.wait()
        assert not connection.dropped
        assert connection.close_reason == "the server closed the connection (code 1001)"


async def test_a_reply_written_after_our_close_frame_still_resolves_its_request() -> None:
    """Once the client starts closing, websockets' own parser reads the socket again: a reply
    the server sends before its close reply still reaches the waiting request."""
    async with RawRoomServer(first=greeting(), answer_close=False) as server:
        connection = await Connection.open(server.url, "token", timeout=BOUND)
        reply = await connection.send_request("room.invoke_tool", {"tool": "x"})
        async with asyncio.timeout(BOUND):
            request = await server.messages.get()
            closing = asyncio.create_task(connection.close())
            opcode, payload = await server.controls.get()
            assert opcode == OP_CLOSE
            server.write(response(request.id, {"ok": 1}))  # still data, after our close
            server.write(server_frame(OP_CLOSE, payload))  # the close reply
            server.hang_up()
            await closing
            assert (await reply).header == {"type": "json", "json": {"ok": 1}}
        assert not connection._ws.lean
        assert connection.close_reason == "closed by the client"


async def test_a_reply_to_a_cancelled_request_goes_to_the_orphan_handler() -> None:
    async with RawRoomServer(first=greeting()) as server:
        connection = await Connection.open(server.url, "token", timeout=BOUND)
        orphans: asyncio.Queue[object] = asyncio.Queue()
        waiting = asyncio.create_task(
            connection.request("room.invoke_tool", {"tool": "x"}, on_orphan=orphans.put_nowait))
        async with asyncio.timeout(BOUND):
            request = await server.messages.get()
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            server.write(response(request.id, {"n": 7}))
            orphan = await orphans.get()
        assert orphan.type == "json"
        await connection.close()


async def test_a_paused_socket_makes_the_next_writer_wait_and_keeps_messages_whole() -> None:
    """The server reads nothing at first: writes fill the socket until websockets pauses it;
    the next send waits (it is not written) until the server reads, then all arrive whole."""
    async with RawRoomServer(first=greeting()) as server:
        connection = await Connection.open(server.url, "token", timeout=BOUND)
        ws = connection._ws
        # the raw server reads as soon as bytes come, so pause its transport first
        assert server.writer is not None
        server.writer.transport.pause_reading()
        big = b"z" * (1 << 20)
        sent = 0
        async with asyncio.timeout(BOUND):
            while not ws.paused:
                await connection.send("blob", {"n": sent}, big)
                sent += 1
            late = asyncio.create_task(connection.send("blob", {"n": sent}, b"last"))
            for _ in range(5):
                await asyncio.sleep(0)
            assert not late.done()  # waiting for the socket to drain, nothing written
            server.writer.transport.resume_reading()
            await late
            for n in range(sent + 1):
                message = await server.messages.get()
                assert message.type == "blob"
                assert len(message.data) > (len(big) if n < sent else 4)
        await connection.close()


async def test_a_keepalive_ping_is_acknowledged_through_the_lean_path(room) -> None:
    """websockets' own pings (keepalive) still see their pongs: the lean path hands each
    control frame to websockets, which resolves the ping's waiter."""
    connection = await room.connection()
    ws = connection._ws
    assert ws.lean
    async with asyncio.timeout(BOUND):
        latency = await (await ws.ping(b"lean?"))
    assert latency >= 0
    assert ws.lean
    assert await room.queues.receive("after-ping", wait=False) is None  # still serving


async def test_a_text_frame_is_ignored_and_the_next_message_still_arrives(caplog) -> None:
    async with RawRoomServer() as server:
        ws, inbox = await open_lean(server.url)
        async with asyncio.timeout(BOUND):
            await server.connected.wait()
            server.write(server_frame(0x1, b"{}") + frames_of([b"binary"]))
            assert await inbox.until(1) == [b"binary"]
        assert "text frame" in caplog.text
        assert ws.lean
        await ws.close()


@pytest.mark.parametrize("loop_queue_visible", [True, False])
async def test_a_pipelined_burst_round_trips_in_order(room, loop_queue_visible) -> None:
    """64 sends in flight at once, then 64 receives: with the loop's ready queue visible (a
    burst shares one write) and without it (another event loop: every write schedules the
    end of its turn), every message arrives once, in order."""
    connection = await room.connection()
    if not loop_queue_visible:
        connection._ready_queue = ALWAYS_BUSY
    async with asyncio.timeout(BOUND):
        await asyncio.gather(*(room.queues.send("burst", {"n": n}) for n in range(64)))
        got = await asyncio.gather(*(room.queues.receive("burst", wait=False)
                                     for _ in range(64)))
    assert [message["n"] for message in got] == list(range(64))


async def test_a_burst_leaves_in_writes_of_a_few_kib_while_it_is_encoded() -> None:
    """The first message of a loop turn goes out at once, the rest of a pipelined burst in
    writes of about ``TURN_BUFFER_MAX`` bytes as it is encoded (so the server starts on its
    head), and the remainder as the turn ends: every message whole, once, in order."""
    async with RawRoomServer(first=greeting()) as server:
        connection = await Connection.open(server.url, "token", timeout=BOUND)
        transport = connection._ws.transport
        written: list[int] = []
        write = transport.write

        def counting_write(data: bytes) -> None:
            written.append(len(data))
            write(data)

        transport.write = counting_write
        pad = "x" * 200
        async with asyncio.timeout(BOUND):
            await asyncio.gather(*(connection.send("set_attributes", {"n": f"{n:02}", "pad": pad})
                                   for n in range(64)))
            got = [await server.messages.get() for _ in range(64)]
        one = written[0]  # a message's frames: all the same size here
        assert len(written) >= 3 and sum(written) == 64 * one
        assert all(TURN_BUFFER_MAX <= size < TURN_BUFFER_MAX + one for size in written[1:-1])
        assert [unpack(message.data)[0]["n"] for message in got] == [f"{n:02}" for n in range(64)]
        await connection.close()


async def test_malformed_packets_are_dropped_and_the_connection_goes_on(caplog) -> None:
    """A packet out of order or too short is logged and dropped (the assembler starts over at
    the next header packet); a reply whose envelope is broken resolves its request with an
    error; the next well-formed reply still reaches its request."""
    async with RawRoomServer(first=greeting()) as server:
        connection = await Connection.open(server.url, "token", timeout=BOUND)
        broken = asyncio.create_task(connection.request("room.invoke_tool", {"tool": "x"}))
        fine = asyncio.create_task(connection.request("room.invoke_tool", {"tool": "y"}))
        async with asyncio.timeout(BOUND):
            first, second = await server.messages.get(), await server.messages.get()
            header_packet, data_packet = encode_message(first.id, "__response__", b"\x00" * 8 + b"{")
            server.write(frames_of([
                b"short",  # shorter than a packet prefix
                data_packet,  # a data packet with no header packet before it
                header_packet, data_packet,  # a whole reply with a broken envelope
            ]) + response(second.id, {"ok": 2}))
            with pytest.raises(RoomError, match="malformed reply"):
                await broken
            assert (await fine).header == {"type": "json", "json": {"ok": 2}}
        assert "shorter than a packet prefix" in caplog.text
        assert f"got packet 1 of message {first.id}, expected a header packet" in caplog.text
        assert connection.is_open
        await connection.close()
