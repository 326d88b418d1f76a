"""The MeshAgent room wire format: packet framing, message envelopes and contents.

This is the one codec in localmesh: the emulator (server side) and our room client
(client side) both import it, so the two can never disagree about bytes.

A *message* is ``(message_id, type, data)``. On the socket it travels as one header
packet and ``ceil(len(data) / 1024)`` data packets, each its own binary frame. ``data``
is an *envelope*: an 8-byte big-endian header length, a JSON object, then a payload.
A *content* is an envelope whose JSON header has a ``type`` key (json, text, error...).
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PACKET_DATA_SIZE = 1024
# The packet size both ends use when each says it takes it: localmesh's client and server
# announce it in the ``x-localmesh-packet-size`` header of the websocket handshake (the real
# SDK and server never do, so with them packets stay at PACKET_DATA_SIZE, as the SDK sends).
LARGE_PACKET_SIZE = 1024 * 1024
PACKET_SIZE_HEADER = "x-localmesh-packet-size"
_ID = 8
_INDEX = 4
_COUNT = 4
HEADER_PREFIX = _ID + _INDEX + _COUNT  # bytes before the message type in a header packet
DATA_PREFIX = _ID + _INDEX  # bytes before the data in a data packet
ENVELOPE_LENGTH = 8
_TRACE_KEY = "__meshagent__"  # the SDK's OpenTelemetry key, never an argument


class WireError(ValueError):
    """Bytes that do not follow the wire format. The message says what was wrong."""


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message the assembler refused to keep (over a limit). Its remaining packets are
    skipped without being stored; ``reason`` is meant for an error reply to ``id``."""

    id: int
    type: str
    reason: str


class InboundBudget:
    """Bytes of unfinished messages all connections may hold at once.

    One budget is shared by every assembler of a server, so many connections that each
    start a large message and stall cannot add up past it.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.used = 0

    def has_room(self, size: int) -> bool:
        return self.used + size <= self.max_bytes

    def reserve(self, size: int) -> bool:
        if not self.has_room(size):
            return False
        self.used += size
        return True

    def release(self, size: int) -> None:
        self.used = max(0, self.used - size)


# ---------------------------------------------------------------- packet framing


def packet_count(data: bytes, packet_size: int = PACKET_DATA_SIZE) -> int:
    return (len(data) + packet_size - 1) // packet_size


_FIRST_INDEX = (0).to_bytes(_INDEX, "big")
_SECOND_INDEX = (1).to_bytes(_INDEX, "big")
_NO_PACKETS = (0).to_bytes(_COUNT, "big")
_ONE_PACKET = (1).to_bytes(_COUNT, "big")


def encode_message(
    message_id: int, type: str, data: bytes, packet_size: int = PACKET_DATA_SIZE
) -> list[bytes]:
    """The frames of one message, to be written back to back, never interleaved."""
    id_bytes = message_id.to_bytes(_ID, "big")
    if len(data) <= packet_size:  # most messages: one data packet (or none), no slicing
        if not data:
            return [id_bytes + _FIRST_INDEX + _NO_PACKETS + type.encode()]
        return [id_bytes + _FIRST_INDEX + _ONE_PACKET + type.encode(), id_bytes + _SECOND_INDEX + data]
    count = packet_count(data, packet_size)
    frames = [id_bytes + _FIRST_INDEX + count.to_bytes(_COUNT, "big") + type.encode()]
    view = memoryview(data)
    for index in range(count):
        chunk = view[index * packet_size : (index + 1) * packet_size]
        frames.append(id_bytes + (index + 1).to_bytes(_INDEX, "big") + bytes(chunk))
    return frames


def agreed_packet_size(announced: str | None) -> int:
    """The packet size to send with, given the peer's ``x-localmesh-packet-size`` header."""
    try:
        offered = int(announced) if announced is not None else 0
    except ValueError:
        offered = 0
    return min(offered, LARGE_PACKET_SIZE) if offered > PACKET_DATA_SIZE else PACKET_DATA_SIZE


class PacketAssembler:
    """Reassembles messages from frames, one state machine per connection.

    Unlike the SDK's receiver, which silently drops a bad message, ``feed`` raises
    ``WireError`` naming what was wrong, so a server can answer the peer with a reason.
    The assembler is ready for the next header packet after an error.

    Limits are checked on what arrives, before it is kept: the size a header announces
    (packets x 1024), each data packet (``max_packet_bytes``), the running size of the
    message, and the shared ``budget``. A message over one is returned as ``Rejected``
    at once, and its remaining packets are read and dropped, so the connection can go on.
    """

    def __init__(
        self,
        max_message_bytes: int | None = None,
        *,
        max_packet_bytes: int | None = None,
        budget: InboundBudget | None = None,
    ) -> None:
        self._max = max_message_bytes
        self._max_packet = max_packet_bytes
        self._budget = budget
        self._reserved = 0
        self._reset()

    def _reset(self) -> None:
        if self._budget is not None and self._reserved:
            self._budget.release(self._reserved)
        self._reserved = 0
        self._id = -1
        self._type = ""
        self._expected = 0
        self._next_index = 0
        self._size = 0
        self._skipping = False  # a rejected message: read its packets, keep nothing
        self._parts: list[bytes] = []

    @property
    def in_message(self) -> bool:
        return self._next_index > 0

    @property
    def buffered_bytes(self) -> int:
        """Bytes of the unfinished message held right now."""
        return self._size

    def close(self) -> None:
        """Give back what an unfinished message holds (the connection is gone)."""
        self._reset()

    def feed(self, frame: bytes) -> Message | Rejected | None:
        """Take one frame; return the message it completes or the rejection it causes."""
        if len(frame) < DATA_PREFIX:
            self._reset()
            raise WireError(f"frame of {len(frame)} bytes is shorter than a packet prefix")
        message_id = int.from_bytes(frame[:_ID], "big")
        index = int.from_bytes(frame[_ID:DATA_PREFIX], "big")
        if index == 0:
            return self._start(message_id, frame)
        if index != self._next_index or message_id != self._id:
            expected = f"packet {self._next_index} of message {self._id}" if self.in_message else (
                "a header packet"
            )
            self._reset()
            raise WireError(f"got packet {index} of message {message_id}, expected {expected}")
        last = index == self._expected
        if self._skipping:
            self._next_index += 1
            if last:
                self._reset()
            return None
        size = len(frame) - DATA_PREFIX
        rejection = self._refusal(size)
        if rejection is not None:
            self._skip()
            if last:
                self._reset()
            return rejection
        if index == 1 and last:
            # The whole message in one packet (most messages): nothing is held between frames,
            # so there is nothing to reserve or join.
            self._next_index = 0
            return Message(self._id, self._type, frame[DATA_PREFIX:])
        if self._budget is not None:
            self._budget.reserve(size)  # it has room: _refusal asked
            self._reserved += size
        self._size += size
        self._parts.append(frame[DATA_PREFIX:])
        if last:
            return self._finish()
        self._next_index += 1
        return None

    def _refusal(self, size: int) -> Rejected | None:
        """Why a data packet of ``size`` bytes cannot be kept (None: it can), checked before
        it is kept."""
        if self._max_packet is not None and size > self._max_packet:
            return self._rejected(
                f"a packet of {size} bytes exceeds the limit of {self._max_packet} bytes per packet"
            )
        if self._max is not None and self._size + size > self._max:
            return self._rejected(
                f"message of more than {self._size + size} bytes exceeds the limit of"
                f" {self._max} bytes"
            )
        if self._budget is not None and not self._budget.has_room(size):
            return self._rejected(
                "the room server holds too many unfinished messages right now"
                f" ({self._budget.max_bytes} bytes in all); send it again later"
            )
        return None

    def _rejected(self, reason: str) -> Rejected:
        return Rejected(self._id, self._type, reason)

    def _skip(self) -> None:
        """Drop what the current message holds; read and ignore the rest of its packets."""
        if self._budget is not None and self._reserved:
            self._budget.release(self._reserved)
        self._reserved = 0
        self._parts = []
        self._size = 0
        self._skipping = True
        self._next_index += 1

    def _start(self, message_id: int, frame: bytes) -> Message | Rejected | None:
        if self.in_message:  # (otherwise the last message's end reset everything already)
            self._reset()
            raise WireError("a header packet arrived before the previous message was complete")
        if len(frame) < HEADER_PREFIX:
            raise WireError(f"header packet of {len(frame)} bytes has no packet count")
        count = int.from_bytes(frame[DATA_PREFIX:HEADER_PREFIX], "big")
        try:
            self._type = frame[HEADER_PREFIX:].decode()
        except UnicodeDecodeError as error:
            raise WireError(f"message type is not UTF-8: {error}") from None
        self._id = message_id
        self._expected = count
        if count == 0:
            return self._finish()
        self._next_index = 1
        # Each packet carries up to 1024 bytes: a header announcing more than the limit
        # allows is refused before any of its data arrives.
        if self._max is not None and (count - 1) * PACKET_DATA_SIZE >= self._max:
            rejection = self._rejected(
                f"message of {count} packets exceeds the limit of {self._max} bytes"
            )
            self._skipping = True
            return rejection
        return None

    def _finish(self) -> Message:
        message = Message(self._id, self._type, b"".join(self._parts))
        self._reset()
        return message


# ---------------------------------------------------------------- envelopes


def pack(header: dict[str, Any], payload: bytes = b"") -> bytes:
    if not payload and header == _EMPTY:  # the reply to most calls
        return _EMPTY_ENVELOPE
    # ASCII-escaped, as the SDK writes it: a lone surrogate a client sent in a string
    # (legal JSON: "\\ud800") goes back out as the same escape, never as invalid UTF-8.
    body = _encoded(_encode_compact, header, separators=(",", ":"), default=str).encode("ascii")
    return len(body).to_bytes(ENVELOPE_LENGTH, "big") + body + payload


_EMPTY = {"type": "empty"}
_EMPTY_ENVELOPE = len(b'{"type":"empty"}').to_bytes(ENVELOPE_LENGTH, "big") + b'{"type":"empty"}'

# json.dumps with its defaults, without building an encoder per call (json.dumps makes one
# each time). Only where C's encoder exists; the pure-Python json module keeps json.dumps.
# No circular-reference markers: one shared table could keep stale ids after an error.
_make_encoder = getattr(json.encoder, "c_make_encoder", None)
_encode_chunks = None if _make_encoder is None else _make_encoder(
    None, json.JSONEncoder().default, json.encoder.encode_basestring_ascii, None, ": ", ", ",
    False, False, True)
# ... and json.dumps(value, separators=(",", ":"), default=str), what an envelope's header is.
_encode_compact = None if _make_encoder is None else _make_encoder(
    None, str, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True)


def dumps_json(value: Any) -> str:
    """``json.dumps(value)``, the same text, for the hot paths."""
    return _encoded(_encode_chunks, value)


def _encoded(encoder: Callable[[Any, int], Any] | None, value: Any, **options: Any) -> str:
    """``json.dumps(value, **options)``, the same text, through ``encoder`` (built with the
    same options) when there is one; a value it refuses (one that holds itself) goes through
    json.dumps for the same error."""
    if encoder is not None:
        try:
            return "".join(encoder(value, 0))
        except Exception:
            pass
    return json.dumps(value, **options)


def is_valid_unicode(text: str) -> bool:
    """False for a string holding a lone surrogate ("\\ud800" is legal JSON, not Unicode):
    such a string cannot be a name or a path, since it has no UTF-8 form."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# Deeper JSON than this is refused: Python code that walks a value (repr, deepcopy, logging)
# recurses once or twice per level and would fail with a RecursionError long before the
# parser does. Real messages nest a few levels.
MAX_JSON_DEPTH = 256


# The C scanner json.loads ends in, called directly: one call instead of four Python-level
# ones and two whitespace passes. Anything it does not take whole (surrounding whitespace, an
# error) goes through json.loads, for the same value or the same error message.
_scan_json = json.JSONDecoder().scan_once


def loads_json(text: bytes | str, what: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON from a peer; anything the parser cannot take is a ``WireError``.

    Besides malformed text this covers nesting deeper than ``max_depth`` and integers past
    Python's digit limit (ValueError), which would otherwise escape as tracebacks.
    """
    try:
        # Decoded here: json.loads would first sniff bytes for UTF-16/32, which peers never send.
        if isinstance(text, bytes):
            text = text.decode()
        try:
            value, end = _scan_json(text, 0)
        except (StopIteration, ValueError):
            end = -1
        if end != len(text):
            value = json.loads(text)
    except RecursionError:
        raise WireError(f"{what} is nested more than {max_depth} levels deep") from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, the int digit limit
        raise WireError(f"{what} is not valid JSON: {error}") from None
    # Counting brackets is cheap; only a value with many of them needs walking.
    if text.count("[") + text.count("{") > max_depth and too_deep(value, max_depth):
        raise WireError(f"{what} is nested more than {max_depth} levels deep")
    return value


def too_deep(value: Any, max_depth: int) -> bool:
    """Whether a parsed JSON value nests more than ``max_depth`` levels (no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def pack_encoded(header_json: bytes, payload: bytes = b"") -> bytes:
    """``pack`` for a header that is already JSON text (UTF-8)."""
    return len(header_json).to_bytes(ENVELOPE_LENGTH, "big") + header_json + payload


def unpack(data: bytes) -> tuple[dict[str, Any], bytes]:
    """Split an envelope into its JSON header (trace key removed) and payload."""
    if len(data) < ENVELOPE_LENGTH:
        raise WireError(f"envelope of {len(data)} bytes has no header length")
    length = int.from_bytes(data[:ENVELOPE_LENGTH], "big")
    end = ENVELOPE_LENGTH + length
    if end > len(data):
        raise WireError(f"envelope header length {length} runs past the {len(data)}-byte message")
    header = loads_json(data[ENVELOPE_LENGTH:end], "envelope header")
    if not isinstance(header, dict):
        raise WireError(f"envelope header must be a JSON object, not {type(header).__name__}")
    header.pop(_TRACE_KEY, None)
    return header, data[end:]


# ---------------------------------------------------------------- contents


@dataclass(frozen=True, slots=True)
class Content:
    """A typed content: ``header`` holds ``type`` and its fields, ``payload`` any bytes."""

    header: dict[str, Any]
    payload: bytes = b""

    @property
    def type(self) -> str:
        return self.header["type"]

    def pack(self) -> bytes:
        return pack(self.header, self.payload)


def json_content(value: Any) -> Content:
    return Content({"type": "json", "json": value})


def text_content(text: str) -> Content:
    return Content({"type": "text", "text": text})


def empty_content() -> Content:
    return Content({"type": "empty"})


def error_content(text: str, code: int | None = None) -> Content:
    header: dict[str, Any] = {"type": "error", "text": text}
    if code is not None:
        header["code"] = code
    return Content(header)


def binary_content(headers: dict[str, Any], payload: bytes = b"") -> Content:
    return Content({"type": "binary", "headers": headers}, payload)


def guess_mime_type(name: str) -> str:
    """The mime type of a file whose sender named none; both ends default the same way."""
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def control_open() -> Content:
    return Content({"type": "control", "method": "open"})


def control_close(status_code: int = 1000, message: str | None = None) -> Content:
    header: dict[str, Any] = {"type": "control", "method": "close", "status_code": status_code}
    if message is not None:
        header["message"] = message
    return Content(header)


CONTENT_TYPES = frozenset({"json", "text", "empty", "error", "file", "binary", "link", "control", "raw"})


def content_from_header(header: Any, payload: bytes = b"") -> Content:
    """Validate a content header (as found in ``arguments`` or ``chunk``)."""
    if not isinstance(header, dict):
        raise WireError(f"content must be a JSON object, not {type(header).__name__}")
    kind = header.get("type")
    if kind not in CONTENT_TYPES:
        raise WireError(f"unsupported content type {kind!r}")
    return Content(header, payload)


def unpack_content(data: bytes) -> Content:
    header, payload = unpack(data)
    return content_from_header(header, payload)


def as_content(value: Any) -> Content:
    """Wrap a plain value the way the SDK does: dict -> json, str -> text, None -> empty."""
    if isinstance(value, Content):
        return value
    if value is None:
        return empty_content()
    if isinstance(value, str):
        return text_content(value)
    return json_content(value)
