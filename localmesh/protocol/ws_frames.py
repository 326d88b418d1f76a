"""A lean reader of websocket frames (RFC 6455), for the data path of both ends.

The websocket libraries parse every frame through generic machinery (a generator-based
parser, event objects, queues between tasks). A room message is two frames or more, so
that machinery is most of the cost of a message. ``FrameReader`` parses data frames
straight from the bytes as they arrive and hands each whole message to a callback;
control frames (ping, pong, close) are handed back byte for byte, so the library that
owns the connection still answers them, and the close handshake stays its own.

Limits are checked from a frame's header, before its payload is buffered. The protocol
layer imports no websocket library: a server passes in a fast unmasking function (the C
helper in websockets' wheels); ``xor_mask`` is the pure-Python fallback.
"""

from __future__ import annotations

from collections.abc import Callable

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
CLOSE_PROTOCOL_ERROR, CLOSE_INVALID_DATA, CLOSE_TOO_BIG = 1002, 1007, 1009

# A whole message: its payload and whether it was a text frame. Returns whether to go on
# reading (False: stop here; the rest stays buffered until ``feed`` is called again).
OnMessage = Callable[[bytes, bool], bool]
# A control frame, header and payload as they came. Returns whether to go on reading.
OnControl = Callable[[bytes], bool]
# The peer broke the protocol: the close code and the reason. Reading stops for good.
OnError = Callable[[int, str], None]
# Unmasks a payload with its 4-byte key (the same function masks it).
Unmask = Callable[[memoryview, memoryview], bytes]


def xor_mask(data: memoryview | bytes, mask: memoryview | bytes) -> bytes:
    """RFC 6455 masking in pure Python: one XOR of two big integers (slow past a few KiB)."""
    size = len(data)
    key = (bytes(mask) * (size // 4 + 1))[:size]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(size, "little")


class FrameReader:
    """Frames in, whole messages out. ``masked``: frames from a client (each must be masked,
    RFC 6455 5.1); False for frames from a server (none may be)."""

    def __init__(
        self,
        *,
        masked: bool,
        on_message: OnMessage,
        on_control: OnControl,
        on_error: OnError,
        max_message_size: int | None = None,
        max_frame_size: int | None = None,
        unmask: Unmask = xor_mask,
    ) -> None:
        self.masked = masked
        self._unmask = unmask
        self.max_message_size = max_message_size
        self.max_frame_size = max_frame_size
        self._on_message = on_message
        self._on_control = on_control
        self._on_error = on_error
        self._buffer = bytearray()  # bytes of an incomplete frame, or held while stopped
        self._fragments: list[bytes] | None = None  # a fragmented message being assembled
        self._fragments_size = 0
        self._fragmented_text = False
        self.failed = False

    @property
    def buffered(self) -> bytes:
        """The bytes received and not parsed yet (to hand to another parser)."""
        return bytes(self._buffer)

    @property
    def buffered_size(self) -> int:
        return len(self._buffer)

    def hold(self, data: bytes) -> None:
        """Keep ``data`` unparsed, after what is held already (the reader is stopped)."""
        if not self.failed:
            self._buffer += data

    def feed(self, data: bytes = b"") -> bool:
        """Parse what ``data`` completes; False if a callback stopped reading or the peer
        failed the protocol (then ``failed`` is set)."""
        if self.failed:
            return False
        if self._buffer:
            self._buffer += data
            data = self._buffer
        consumed, go_on = self._parse(data)
        if self.failed:
            self._buffer.clear()
        elif data is self._buffer:
            del self._buffer[:consumed]
        elif consumed < len(data):
            self._buffer = bytearray(data[consumed:])
        return go_on

    def _parse(self, data: bytes | bytearray) -> tuple[int, bool]:
        """Handle every whole frame in ``data``: how many bytes they took, and whether to
        go on reading."""
        view = memoryview(data)
        size = len(data)
        position = 0
        mask_bytes = 4 if self.masked else 0
        while size - position >= 2:
            first, second = data[position], data[position + 1]
            length = second & 0x7F
            header = 2
            if length == 126:
                if size - position < 4:
                    break
                length = int.from_bytes(view[position + 2 : position + 4], "big")
                header = 4
            elif length == 127:
                if size - position < 10:
                    break
                length = int.from_bytes(view[position + 2 : position + 10], "big")
                header = 10
            if bool(second & 0x80) is not self.masked:
                must = "must" if self.masked else "must not"
                return self._fail(CLOSE_PROTOCOL_ERROR, f"a {'client' if self.masked else 'server'}"
                                  f" frame {must} be masked")
            opcode = first & 0x0F
            start = position + header + mask_bytes
            end = start + length
            if opcode >= 0x8:  # a control frame: the connection's owner handles it
                if length > 125:
                    return self._fail(CLOSE_PROTOCOL_ERROR, "control frame over 125 bytes")
                if size < end:
                    break
                frame = bytes(view[position:end])
                position = end
                if not self._on_control(frame):
                    return position, False
                continue
            if first & 0x70:
                return self._fail(CLOSE_PROTOCOL_ERROR, "reserved bits set with no extension")
            # Refused from its header, before its bytes are buffered.
            limit = self.max_message_size
            if limit is not None and self._fragments_size + length > limit:
                return self._fail(CLOSE_TOO_BIG, f"message over {limit} bytes")
            if self.max_frame_size is not None and length > self.max_frame_size:
                return self._fail(CLOSE_TOO_BIG, f"frame over {self.max_frame_size} bytes")
            if size < end:
                break
            if self.masked:
                payload = self._unmask(view[start:end], view[position + header : start])
            else:
                payload = bytes(view[start:end])
            position = end
            if first == 0x80 | OP_BINARY and self._fragments is None:  # a whole binary message
                if not self._on_message(payload, False):  # (most frames: no assembly)
                    return position, False
                continue
            message = self._assemble(opcode, bool(first & 0x80), payload)
            if message is None:
                if self.failed:
                    return position, False
                continue
            if not self._on_message(*message):
                return position, False
        return position, True

    def _assemble(self, opcode: int, fin: bool, payload: bytes) -> tuple[bytes, bool] | None:
        """The whole message a data frame completes, or None (more to come, or it failed)."""
        if opcode == OP_CONT:
            if self._fragments is None:
                self._fail(CLOSE_PROTOCOL_ERROR, "unexpected continuation frame")
                return None
            self._fragments.append(payload)
            self._fragments_size += len(payload)
            if not fin:
                return None
            payload = b"".join(self._fragments)
            text = self._fragmented_text
            self._fragments, self._fragments_size = None, 0
            return payload, text
        if opcode not in (OP_BINARY, OP_TEXT):
            self._fail(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")
            return None
        if self._fragments is not None:
            self._fail(CLOSE_PROTOCOL_ERROR, "expected a continuation frame")
            return None
        text = opcode == OP_TEXT
        if not fin:
            self._fragments, self._fragments_size = [payload], len(payload)
            self._fragmented_text = text
            return None
        return payload, text

    def _fail(self, code: int, reason: str) -> tuple[int, bool]:
        self.failed = True
        self._fragments, self._fragments_size = None, 0
        self._on_error(code, reason)
        return 0, False


def frame_header(opcode: int, length: int, *, masked: bool = False) -> bytes:
    """A final frame's header: FIN, the opcode, the mask bit (a client's frames; the 4-byte
    key follows the header), the payload length."""
    mask_bit = 0x80 if masked else 0
    if length < 126:
        return bytes((0x80 | opcode, mask_bit | length))
    if length < 65536:
        return bytes((0x80 | opcode, mask_bit | 126)) + length.to_bytes(2, "big")
    return bytes((0x80 | opcode, mask_bit | 127)) + length.to_bytes(8, "big")
