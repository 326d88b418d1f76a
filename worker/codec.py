"""The client's hot path through the wire format: the same bytes and the same errors as
``localmesh.protocol.wire``, in fewer Python calls.

Every queue operation is one request out and one reply in, so what the codec spends per
message is the client's cost per operation. ``wire`` serves both ends (the server's
assembler enforces limits and budgets a client has no use for); the functions here do a
client's common case inline and leave everything unusual to ``wire``, so an odd message
gets exactly the answer it would get there.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from localmesh.protocol.wire import (
    CONTENT_TYPES,
    DATA_PREFIX,
    ENVELOPE_LENGTH,
    HEADER_PREFIX,
    Content,
    WireError,
    loads_json,
    pack,
    unpack_content,
)

OnMessage = Callable[[int, str, bytes], None]  # a whole message: its id, type and data
OnError = Callable[[WireError], None]  # a frame that breaks the wire format
_ID_AND_INDEX = struct.Struct(">QI")  # a packet's message id and packet index
_COUNT = struct.Struct(">I")  # a header packet's count of data packets, after them
_TRACE_KEY = "__meshagent__"  # the SDK's OpenTelemetry key: wire.unpack drops it too

_EMPTY_REPLY = pack({"type": "empty"})  # the reply to a send (and to most calls), as the server packs it


def unpack_reply(data: bytes) -> Content:
    """``wire.unpack_content(data)``: a reply's envelope as a content, or ``WireError``."""
    if data == _EMPTY_REPLY:
        return Content({"type": "empty"})  # a fresh header: the caller may keep or change it
    size = len(data)
    if size >= ENVELOPE_LENGTH:
        end = ENVELOPE_LENGTH + int.from_bytes(data[:ENVELOPE_LENGTH], "big")
        if end <= size:
            header = loads_json(data[ENVELOPE_LENGTH:end], "envelope header")
            if type(header) is dict and header.get("type") in CONTENT_TYPES:
                header.pop(_TRACE_KEY, None)
                return Content(header, data[end:])
    return unpack_content(data)  # malformed: wire says what is wrong


class MessageAssembler:
    """``wire.PacketAssembler`` without limits (a client's, as ``Connection`` always used
    it), as a sink: each frame in with one call, each whole message out to ``on_message(id,
    type, data)``, and a frame that breaks the format to ``on_error`` with ``wire``'s
    ``WireError`` (the assembler is then ready for the next header packet, as ``wire``'s is)."""

    __slots__ = ("_on_message", "_on_error", "_id", "_type", "_expected", "_next_index", "_parts")

    def __init__(self, on_message: OnMessage, on_error: OnError) -> None:
        self._on_message = on_message
        self._on_error = on_error
        self._reset()

    def _reset(self) -> None:
        self._id = -1
        self._type = ""
        self._expected = 0
        self._next_index = 0  # 0: a header packet comes next
        self._parts: list[bytes] = []

    def _refuse(self, reason: str, *, reset: bool = True) -> None:
        if reset:
            self._reset()
        self._on_error(WireError(reason))

    def feed(self, frame: bytes) -> None:
        """Take one frame (a packet)."""
        size = len(frame)
        if size < DATA_PREFIX:
            return self._refuse(f"frame of {size} bytes is shorter than a packet prefix")
        message_id, index = _ID_AND_INDEX.unpack_from(frame)
        if index == 0:
            if self._next_index:
                return self._refuse("a header packet arrived before the previous message was complete")
            if size < HEADER_PREFIX:
                return self._refuse(f"header packet of {size} bytes has no packet count", reset=False)
            try:
                message_type = frame[HEADER_PREFIX:].decode()
            except UnicodeDecodeError as error:
                return self._refuse(f"message type is not UTF-8: {error}", reset=False)
            count = _COUNT.unpack_from(frame, DATA_PREFIX)[0]
            if count == 0:
                return self._on_message(message_id, message_type, b"")
            self._id, self._type, self._expected, self._next_index = (
                message_id, message_type, count, 1)
            return None
        if index != self._next_index or message_id != self._id:
            expected = (f"packet {self._next_index} of message {self._id}" if self._next_index
                        else "a header packet")
            return self._refuse(f"got packet {index} of message {message_id}, expected {expected}")
        if index == self._expected:
            parts = self._parts
            if parts:
                parts.append(frame[DATA_PREFIX:])
                data = b"".join(parts)
                self._parts = []
            else:
                data = frame[DATA_PREFIX:]
            self._next_index = 0
            return self._on_message(self._id, self._type, data)
        self._parts.append(frame[DATA_PREFIX:])
        self._next_index = index + 1
        return None
