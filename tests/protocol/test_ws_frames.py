"""FrameReader against websockets' own frame encoder: whatever way the bytes are split, the
same messages and control frames come out, in order; limits hold before payloads arrive."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode
from websockets.speedups import apply_mask

from localmesh.protocol.ws_frames import CLOSE_PROTOCOL_ERROR, CLOSE_TOO_BIG, FrameReader, xor_mask


class Collector:
    def __init__(self, masked: bool, **limits: int) -> None:
        self.events: list[tuple[str, object]] = []
        self.stop_after: int | None = None
        self.reader = FrameReader(masked=masked, on_message=self.message, on_control=self.control,
                                  on_error=self.error, **limits)

    def message(self, payload: bytes, text: bool) -> bool:
        self.events.append(("text" if text else "bytes", payload))
        return self.stop_after is None or len(self.events) < self.stop_after

    def control(self, frame: bytes) -> bool:
        self.events.append(("control", frame[0] & 0x0F))
        return True

    def error(self, code: int, reason: str) -> None:
        self.events.append(("error", (code, reason)))


def encode(frame: Frame, masked: bool) -> bytes:
    return frame.serialize(mask=masked, extensions=[])


messages = st.lists(
    st.tuples(st.binary(max_size=300), st.booleans(), st.integers(1, 3), st.booleans()),
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(messages, st.booleans(), st.lists(st.integers(1, 400), max_size=20))
def test_any_split_gives_the_same_messages(items, masked, cuts) -> None:
    wire = b""
    expected: list[tuple[str, object]] = []
    for payload, text, pieces, ping_inside in items:
        if text:
            payload = payload.decode("latin-1").encode()  # any valid UTF-8
        step = max(1, len(payload) // pieces + 1)
        parts = [payload[i : i + step] for i in range(0, len(payload), step)] or [b""]
        for index, part in enumerate(parts):
            opcode = (Opcode.TEXT if text else Opcode.BINARY) if index == 0 else Opcode.CONT
            wire += encode(Frame(opcode, part, fin=index == len(parts) - 1), masked)
            if ping_inside and index == 0 and len(parts) > 1:  # a control between fragments
                wire += encode(Frame(Opcode.PING, b"hi"), masked)
                expected.append(("control", 0x9))
        expected.append(("text" if text else "bytes", payload))
    collector = Collector(masked)
    position = 0
    for cut in cuts:
        assert collector.reader.feed(wire[position : position + cut])
        position += cut
    collector.reader.feed(wire[position:])
    assert collector.events == expected


def test_a_stop_keeps_the_rest_until_fed_again() -> None:
    collector = Collector(True)
    collector.stop_after = 1
    wire = b"".join(encode(Frame(Opcode.BINARY, bytes([n])), True) for n in range(3))
    assert not collector.reader.feed(wire)
    assert collector.events == [("bytes", b"\x00")]
    assert len(collector.reader.buffered) == 2 * 7  # two frames: 2-byte header, mask, 1 byte
    collector.stop_after = None
    assert collector.reader.feed()
    assert [payload for _, payload in collector.events] == [b"\x00", b"\x01", b"\x02"]


def test_masking_is_checked_each_way() -> None:
    server_side = Collector(True)
    assert not server_side.reader.feed(encode(Frame(Opcode.BINARY, b"x"), False))
    assert server_side.events == [("error", (CLOSE_PROTOCOL_ERROR, "a client frame must be masked"))]
    client_side = Collector(False)
    assert not client_side.reader.feed(encode(Frame(Opcode.BINARY, b"x"), True))
    assert client_side.events[0][1][0] == CLOSE_PROTOCOL_ERROR
    assert client_side.reader.failed and not client_side.reader.feed(b"more")


def test_a_message_over_the_limit_is_refused_from_its_header() -> None:
    collector = Collector(True, max_message_size=1000)
    header_only = encode(Frame(Opcode.BINARY, b"x" * 5000), True)[:8]  # no payload yet
    assert not collector.reader.feed(header_only)
    assert collector.events == [("error", (CLOSE_TOO_BIG, "message over 1000 bytes"))]


def test_fragments_add_up_against_the_limit() -> None:
    collector = Collector(True, max_message_size=100)
    wire = encode(Frame(Opcode.BINARY, b"a" * 60, fin=False), True)
    wire += encode(Frame(Opcode.CONT, b"b" * 60), True)
    assert not collector.reader.feed(wire)
    assert collector.events[-1] == ("error", (CLOSE_TOO_BIG, "message over 100 bytes"))


def test_an_orphan_continuation_and_an_unknown_opcode_fail() -> None:
    orphan = Collector(False)
    orphan.reader.feed(encode(Frame(Opcode.CONT, b"x"), False))
    assert orphan.events == [("error", (CLOSE_PROTOCOL_ERROR, "unexpected continuation frame"))]
    unknown = Collector(False)
    unknown.reader.feed(bytes((0x83, 0)))
    assert unknown.events == [("error", (CLOSE_PROTOCOL_ERROR, "unknown opcode 3"))]


@given(st.binary(max_size=3000), st.binary(min_size=4, max_size=4))
def test_the_pure_python_mask_is_the_c_helpers(data, key) -> None:
    assert xor_mask(data, key) == apply_mask(data, key)
    assert xor_mask(xor_mask(data, key), key) == data


@given(st.lists(st.binary(max_size=70_000), max_size=4))
@settings(max_examples=30, deadline=None)
def test_frame_headers_each_way_read_back(payloads) -> None:
    from localmesh.protocol.ws_frames import OP_BINARY, frame_header

    client = Collector(True)
    key = b"\x01\x02\x03\x04"
    assert client.reader.feed(b"".join(
        frame_header(OP_BINARY, len(p), masked=True) + key + apply_mask(p, key) for p in payloads))
    server = Collector(False)
    assert server.reader.feed(b"".join(frame_header(OP_BINARY, len(p)) + p for p in payloads))
    assert client.events == server.events == [("bytes", p) for p in payloads]
