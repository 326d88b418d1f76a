"""A raw websocket room server for the client's edge cases: a real socket on 127.0.0.1,
frames written byte for byte as a test says, what the client sends read back."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from typing import Any

from localmesh.protocol.wire import PacketAssembler, encode_message, pack
from localmesh.protocol.ws_frames import OP_BINARY, FrameReader, frame_header, xor_mask

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA


def server_frame(opcode: int, payload: bytes, *, masked: bool = False) -> bytes:
    """A frame as a server writes it (unmasked), or a masked one to break the protocol."""
    if not masked:
        return frame_header(opcode, len(payload)) + payload
    key = b"\x01\x02\x03\x04"
    return frame_header(opcode, len(payload), masked=True) + key + xor_mask(payload, key)


def message_frames(message_id: int, type: str, header: dict[str, Any], payload: bytes = b"") -> bytes:
    """The binary frames of one room message."""
    return b"".join(server_frame(OP_BINARY, packet)
                    for packet in encode_message(message_id, type, pack(header, payload)))


def greeting() -> bytes:
    """``room_ready`` and ``connected``: what makes a client's connection ready."""
    return (message_frames(1, "room_ready", {"room_name": "raw", "room_url": "", "session_id": "s"})
            + message_frames(2, "connected", {"type": "init", "participantId": "p1",
                                              "attributes": {}}))


def close_payload(code: int, reason: str = "") -> bytes:
    return code.to_bytes(2, "big") + reason.encode()


class RawRoomServer:
    """One client at a time. ``first`` is written with the 101 response, in the same write.
    ``messages`` gets each room message the client sends, ``controls`` each control frame
    (opcode, payload)."""

    def __init__(self, first: bytes = b"", *, answer_close: bool = True) -> None:
        self.first = first
        self.answer_close = answer_close  # echo a client's close frame, then hang up
        self.close_sent = False
        self.messages: asyncio.Queue[Any] = asyncio.Queue()
        self.controls: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
        self.eof = asyncio.Event()
        self.writer: asyncio.StreamWriter | None = None
        self.connected = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.url = ""

    async def __aenter__(self) -> RawRoomServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/rooms/raw"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.writer is not None and not self.writer.is_closing():
            self.writer.close()
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._run(reader, writer))
        self._tasks.add(task)

    async def _run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        key = next(line.split(b":", 1)[1].strip() for line in request.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key:"))
        accept = base64.b64encode(hashlib.sha1(key + GUID.encode()).digest())
        self.writer = writer
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
                     + self.first)
        self.connected.set()
        assembler = PacketAssembler()

        def on_message(payload: bytes, text: bool) -> bool:
            message = assembler.feed(payload)
            if message is not None:
                self.messages.put_nowait(message)
            return True

        def on_control(frame: bytes) -> bool:
            length = frame[1] & 0x7F  # a control payload is under 126 bytes
            assert len(frame) == 6 + length
            opcode, payload = frame[0] & 0x0F, xor_mask(frame[6:], frame[2:6])
            self.controls.put_nowait((opcode, payload))
            if opcode == OP_CLOSE and self.answer_close and not self.close_sent:
                self.write(server_frame(OP_CLOSE, payload))
                self.hang_up()
            return True

        def on_error(code: int, reason: str) -> None:
            raise AssertionError(f"the client broke the protocol: {reason}")

        frames = FrameReader(masked=True, on_message=on_message, on_control=on_control,
                             on_error=on_error)
        while data := await reader.read(65536):
            frames.feed(data)
        self.eof.set()

    def write(self, data: bytes) -> None:
        assert self.writer is not None
        if data[:1] == bytes((0x80 | OP_CLOSE,)):
            self.close_sent = True
        self.writer.write(data)

    def hang_up(self) -> None:
        assert self.writer is not None
        self.writer.close()
