"""The client's hot-path codec (worker/codec.py, worker/frames.py): the same bytes, values
and errors as ``localmesh.protocol.wire``, whatever a message holds."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from localmesh.protocol.wire import (
    ENVELOPE_LENGTH,
    PACKET_DATA_SIZE,
    PacketAssembler,
    WireError,
    encode_message,
    pack,
    unpack_content,
)
from localmesh.protocol.ws_frames import FrameReader
from localmesh.worker.codec import MessageAssembler, unpack_reply
from localmesh.worker.frames import apply_mask, masked_message

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
headers = st.dictionaries(st.text(max_size=8), json_values, max_size=6)


class NotJson:
    def __str__(self) -> str:
        return "not json \u00e9"


def _packed_by_json_dumps(header: dict, payload: bytes = b"") -> bytes:
    body = json.dumps(header, separators=(",", ":"), default=str).encode("ascii")
    return len(body).to_bytes(ENVELOPE_LENGTH, "big") + body + payload


@given(headers, st.binary(max_size=40))
def test_an_envelope_is_the_bytes_json_dumps_makes(header, payload) -> None:
    # wire.pack encodes with one prebuilt C encoder; what it writes must not change.
    assert pack(header, payload) == _packed_by_json_dumps(header, payload)


def test_values_json_cannot_hold_are_written_as_json_dumps_writes_them() -> None:
    header = {"type": "json", "json": {"at": NotJson(), "n": float("inf"), "s": "\ud800"}}
    assert pack(header) == _packed_by_json_dumps(header)


def test_a_header_that_holds_itself_fails_as_json_dumps_fails() -> None:
    header: dict = {"type": "json"}
    header["json"] = header
    with pytest.raises(ValueError, match="Circular reference"):
        pack(header)
    with pytest.raises(ValueError, match="Circular reference"):
        _packed_by_json_dumps(header)


@given(st.sampled_from(["json", "text", "empty", "error", "binary"]), headers, st.binary(max_size=20),
       st.booleans())
def test_a_reply_unpacks_as_wire_unpacks_it(kind, header, payload, traced) -> None:
    header = {**header, "type": kind}
    if traced:
        header["__meshagent__"] = {"traceparent": "00-1"}
    data = pack(header, payload)
    assert unpack_reply(data) == unpack_content(data)


def test_the_empty_reply_unpacks_to_a_fresh_empty_content_each_time() -> None:
    data = pack({"type": "empty"})
    first, second = unpack_reply(data), unpack_reply(data)
    assert first == second == unpack_content(data)
    first.header["changed"] = True
    assert second.header == {"type": "empty"}


@pytest.mark.parametrize("data", [
    b"", b"\x00\x00", (100).to_bytes(8, "big") + b"{}", pack({"type": "nonsense"}), pack({"no": "type"}),
    (2).to_bytes(8, "big") + b"[]", (3).to_bytes(8, "big") + b"{x}", (1).to_bytes(8, "big") + b"\xff",
])
def test_a_malformed_reply_is_refused_with_wire_s_reason(data) -> None:
    with pytest.raises(WireError) as expected:
        unpack_content(data)
    with pytest.raises(WireError) as got:
        unpack_reply(data)
    assert str(got.value) == str(expected.value)


def outcomes(assembler_kind, frames: list[bytes]) -> list[object]:
    """What an assembler makes of each frame: a message as (id, type, data), None, or the error."""
    seen: list[object] = []
    if assembler_kind is MessageAssembler:
        sink = MessageAssembler(lambda *message: seen.append(message),
                                lambda error: seen.append(("error", str(error))))
        for frame in frames:
            before = len(seen)
            sink.feed(frame)
            assert len(seen) - before <= 1
            if len(seen) == before:
                seen.append(None)
        return seen
    assembler = PacketAssembler()
    for frame in frames:
        try:
            message = assembler.feed(frame)
        except WireError as error:
            seen.append(("error", str(error)))
            continue
        seen.append(None if message is None else (message.id, message.type, message.data))
    return seen


messages = st.tuples(st.integers(0, 2**64 - 1), st.text(max_size=12), st.binary(max_size=3000))


@given(st.lists(messages, max_size=5), st.sampled_from([PACKET_DATA_SIZE, 700, 4096]))
def test_well_formed_messages_come_out_as_the_server_s_assembler_gives_them(batch, size) -> None:
    frames = [frame for message in batch for frame in encode_message(*message, size)]
    got = outcomes(MessageAssembler, frames)
    assert got == outcomes(PacketAssembler, frames)
    assert [message for message in got if message is not None] == batch


frame_bytes = st.one_of(
    st.binary(max_size=20),
    st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3), st.binary(max_size=6)).map(
        lambda t: t[0].to_bytes(8, "big") + t[1].to_bytes(4, "big") + t[2].to_bytes(4, "big") + t[3]),
    st.tuples(st.integers(0, 3), st.integers(0, 3), st.binary(max_size=6)).map(
        lambda t: t[0].to_bytes(8, "big") + t[1].to_bytes(4, "big") + t[2]),
)


@given(st.lists(frame_bytes, max_size=12))
def test_any_frames_give_the_messages_and_errors_the_server_s_assembler_gives(frames) -> None:
    assert outcomes(MessageAssembler, frames) == outcomes(PacketAssembler, frames)


def read_client_frames(data: bytes) -> list[bytes]:
    """Parse client frames as a server does (each must be masked), unmasked payloads out."""
    payloads: list[bytes] = []

    def on_message(payload: bytes, text: bool) -> bool:
        assert not text
        payloads.append(payload)
        return True

    def on_error(code: int, reason: str) -> None:
        raise AssertionError(f"{code} {reason}")

    reader = FrameReader(masked=True, on_message=on_message, on_control=lambda frame: True,
                         on_error=on_error, unmask=apply_mask)
    assert reader.feed(data)
    assert reader.buffered_size == 0
    return payloads


@given(st.integers(0, 2**64 - 1), st.text(max_size=200), st.binary(max_size=5000),
       st.sampled_from([PACKET_DATA_SIZE, 100, 70000]))
def test_a_message_s_frames_carry_wire_s_packets_each_masked(message_id, type, data, size) -> None:
    written = masked_message(message_id, type, data, size)
    assert read_client_frames(written) == encode_message(message_id, type, data, size)


def test_every_frame_has_its_own_nonzero_random_key() -> None:
    keys = []
    for message_id in range(50):
        written = masked_message(message_id, "room.invoke_tool", b"x" * 30, PACKET_DATA_SIZE)
        head_length = written[1] & 0x7F
        keys.append(written[2:6])  # the header packet's key
        keys.append(written[6 + head_length + 2 : 6 + head_length + 6])  # the data packet's
        assert written[1] & 0x80 and written[6 + head_length + 1] & 0x80  # both masked
    # 100 random 32-bit keys: one pair alike has odds of about 1 in 870,000, two pairs under
    # 1e-12; a reused or zero key (what this checks for) fails at once.
    assert len(set(keys)) >= len(keys) - 1
    assert keys.count(bytes(4)) <= 1


# Data sizes on each side of the frame-length forms (7-bit, 16-bit, 64-bit: a data packet is
# 12 bytes of prefix and the data) and of the packet size.
@pytest.mark.parametrize("size", [0, 1, 113, 114, 115, 1023, 1024, 1025, 65523, 65524, 65525, 70000])
@pytest.mark.parametrize("packet_size", [PACKET_DATA_SIZE, 1024 * 1024])
@pytest.mark.parametrize("type", ["room.invoke_tool", "t" * 110, "t" * 200],
                         ids=["short-type", "126-byte-header-packet", "long-type"])
def test_messages_at_each_frame_length_boundary_are_framed_as_wire_packs_them(
    size, packet_size, type
) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    written = masked_message(7, type, data, packet_size)
    assert read_client_frames(written) == encode_message(7, type, data, packet_size)
