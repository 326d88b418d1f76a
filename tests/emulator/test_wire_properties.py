"""Property tests of the wire codec in ``worker/wire.py``.

The real SDK's own framing and envelope code serve as the oracle where they can:
frames must be byte-identical to what the SDK sends, and envelopes must read both ways.
"""

from __future__ import annotations

import asyncio
import json
import math

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from meshagent.api.messaging import pack_message, unpack_message
from meshagent.api.protocol import Protocol

from localmesh.protocol.wire import (
    DATA_PREFIX,
    HEADER_PREFIX,
    PACKET_DATA_SIZE,
    Content,
    InboundBudget,
    Message,
    PacketAssembler,
    Rejected,
    WireError,
    as_content,
    content_from_header,
    encode_message,
    pack,
    packet_count,
    unpack,
    unpack_content,
)

message_ids = st.integers(min_value=0, max_value=2**64 - 1)
type_names = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40)
sizes_on_packet_edges = st.integers(0, 6).flatmap(
    lambda k: st.sampled_from([k * PACKET_DATA_SIZE, max(0, k * PACKET_DATA_SIZE - 1),
                               k * PACKET_DATA_SIZE + 1])
)
payloads = st.one_of(
    st.binary(max_size=5000),
    sizes_on_packet_edges.flatmap(lambda n: st.binary(min_size=n, max_size=n)),
)
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=25,
)
headers = st.dictionaries(
    st.text(max_size=12).filter(lambda k: k != "__meshagent__"), json_values, max_size=6
)


def _feed_all(assembler: PacketAssembler, frames: list[bytes]) -> list[Message | None]:
    return [assembler.feed(frame) for frame in frames]


@given(message_ids, type_names, payloads)
@example(0, "", b"")
@example(2**64 - 1, "room.invoke_tool", bytes(PACKET_DATA_SIZE * 3))
def test_encode_then_assemble_round_trips(message_id, type, data):
    frames = encode_message(message_id, type, data)
    assert len(frames) == 1 + math.ceil(len(data) / PACKET_DATA_SIZE) == 1 + packet_count(data)
    assert all(len(frame) <= DATA_PREFIX + PACKET_DATA_SIZE for frame in frames[1:])
    assert len(frames[0]) == HEADER_PREFIX + len(type.encode())

    results = _feed_all(PacketAssembler(), frames)
    assert results[:-1] == [None] * (len(frames) - 1)  # only the last frame completes it
    assert results[-1] == Message(message_id, type, data)


@given(st.lists(st.tuples(message_ids, type_names, payloads), min_size=1, max_size=6))
def test_one_assembler_reads_messages_back_to_back(messages):
    assembler = PacketAssembler()
    got = []
    for message in messages:
        got += [m for m in _feed_all(assembler, encode_message(*message)) if m is not None]
    assert got == [Message(*message) for message in messages]
    assert not assembler.in_message


class _CapturingProtocol(Protocol):
    """The SDK's own sender, with its packets captured instead of sent."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[bytes] = []
        self._open = True

    @property
    def is_open(self) -> bool:
        return True

    async def send_packet(self, data: bytes) -> None:
        self.sent.append(bytes(data))


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=60)
@given(message_ids, type_names, payloads)
def test_frames_are_byte_identical_to_the_sdks(message_id, type, data):
    async def sdk_frames() -> list[bytes]:
        protocol = _CapturingProtocol()
        await protocol._send_message(message_id=message_id, type=type, data=data)
        return protocol.sent

    assert encode_message(message_id, type, data) == asyncio.run(sdk_frames())


@given(headers, st.binary(max_size=3000))
def test_envelope_round_trips(header, payload):
    assert unpack(pack(header, payload)) == (header, payload)


@given(headers, st.binary(max_size=3000))
def test_envelopes_read_both_ways_with_the_sdk(header, payload):
    # ours -> the SDK
    assert unpack_message(pack(header, payload)) == (header, payload)
    # the SDK (which adds its trace key) -> ours (which drops it)
    assert unpack(pack_message(header, payload)) == (header, payload)


def test_trace_key_is_dropped_and_never_an_argument():
    header, payload = unpack(pack_message({"toolkit": "queues"}, b"p"))
    assert header == {"toolkit": "queues"} and payload == b"p"


@given(st.lists(st.binary(max_size=40), max_size=12), message_ids, type_names, payloads)
@settings(max_examples=300)
def test_assembler_recovers_after_any_garbage(garbage, message_id, type, data):
    assembler = PacketAssembler()
    for frame in garbage:
        try:
            assembler.feed(frame)
        except WireError:
            pass
    frames = encode_message(message_id, type, data)
    # The first message after garbage may be lost (as in the SDK: a header packet inside
    # a message is an error) but never garbled, and it leaves the assembler clean ...
    try:
        first = [m for m in _feed_all(assembler, frames) if m is not None]
        assert first == [Message(message_id, type, data)]
    except WireError:
        pass
    assert not assembler.in_message
    # ... so the next one always gets through.
    assert _feed_all(assembler, frames)[-1] == Message(message_id, type, data)


@given(st.lists(st.binary(max_size=40), max_size=12))
def test_assembler_errors_are_wire_errors_only(garbage):
    assembler = PacketAssembler(max_message_bytes=2048)
    for frame in garbage:
        try:
            result = assembler.feed(frame)
        except WireError as error:
            assert str(error)  # always says what was wrong
        else:
            assert result is None or isinstance(result, Message | Rejected)


@given(st.integers(0, 8 * PACKET_DATA_SIZE), st.integers(1, 6 * PACKET_DATA_SIZE))
def test_size_limit(size, limit):
    assembler = PacketAssembler(max_message_bytes=limit)
    frames = encode_message(7, "t", bytes(size))
    results = [r for r in _feed_all(assembler, frames) if r is not None]
    if size <= limit:
        assert results == [Message(7, "t", bytes(size))]
    else:
        # refused once, named by id, and the rest of its packets are skipped quietly
        assert len(results) == 1 and isinstance(results[0], Rejected)
        assert results[0].id == 7 and "exceeds the limit" in results[0].reason
    assert not assembler.in_message and assembler.buffered_bytes == 0
    assert _feed_all(assembler, encode_message(8, "ok", b"x"))[-1] == Message(8, "ok", b"x")


def _header(message_id: int, count: int, type: str = "t") -> bytes:
    return message_id.to_bytes(8, "big") + (0).to_bytes(4, "big") + count.to_bytes(4, "big") + type.encode()


def _data(message_id: int, index: int, payload: bytes) -> bytes:
    return message_id.to_bytes(8, "big") + index.to_bytes(4, "big") + payload


def test_header_announcing_too_many_packets_is_refused_before_the_data():
    assembler = PacketAssembler(max_message_bytes=4096)
    result = assembler.feed(_header(1, 100))
    assert isinstance(result, Rejected) and "100 packets" in result.reason
    # its data is read and dropped, never kept
    for index in range(1, 101):
        assert assembler.feed(_data(1, index, bytes(1024))) is None
        assert assembler.buffered_bytes == 0
    assert not assembler.in_message


@given(st.integers(2, 40), st.integers(1, 64))
def test_packets_bigger_than_announced_never_grow_past_the_limit(count, packet_kib):
    # The attack of issue 16: announce a few packets, send huge ones.
    limit = 8 * 1024
    assembler = PacketAssembler(max_message_bytes=limit, max_packet_bytes=64 * 1024)
    results = [assembler.feed(_header(3, count))]
    for index in range(1, count + 1):
        results.append(assembler.feed(_data(3, index, bytes(packet_kib * 1024))))
        assert assembler.buffered_bytes <= limit
    rejected = [r for r in results if isinstance(r, Rejected)]
    assert count * packet_kib * 1024 <= limit or len(rejected) == 1
    assert not assembler.in_message


def test_a_packet_over_the_packet_limit_rejects_its_message():
    assembler = PacketAssembler(max_message_bytes=1 << 20, max_packet_bytes=2048)
    assert assembler.feed(_header(5, 3)) is None
    assert assembler.feed(_data(5, 1, bytes(1024))) is None
    result = assembler.feed(_data(5, 2, bytes(4096)))
    assert isinstance(result, Rejected) and "per packet" in result.reason
    assert assembler.buffered_bytes == 0
    assert assembler.feed(_data(5, 3, bytes(10))) is None
    assert not assembler.in_message


def test_the_shared_budget_bounds_unfinished_messages_of_all_connections():
    budget = InboundBudget(3 * 1024)
    first, second = PacketAssembler(budget=budget), PacketAssembler(budget=budget)
    assert first.feed(_header(1, 4)) is None
    assert first.feed(_data(1, 1, bytes(1024))) is None
    assert first.feed(_data(1, 2, bytes(1024))) is None
    assert second.feed(_header(1, 4)) is None
    assert second.feed(_data(1, 1, bytes(1024))) is None
    refused = second.feed(_data(1, 2, bytes(1024)))
    assert isinstance(refused, Rejected) and "too many unfinished messages" in refused.reason
    assert budget.used == 2 * 1024  # the refused message gave back what it held
    first.close()  # a connection that goes away gives back its unfinished message
    assert budget.used == 0


@pytest.mark.parametrize("data", [
    b"", b"\x00" * 7, (10).to_bytes(8, "big") + b"{}",
    (1).to_bytes(8, "big") + b"[", (2).to_bytes(8, "big") + b"[]",
    (2).to_bytes(8, "big") + b"\xff\xfe", (4).to_bytes(8, "big") + b"null",
])
def test_bad_envelopes_raise_wire_error(data):
    with pytest.raises(WireError):
        unpack(data)


@given(json_values)
def test_as_content_wraps_like_the_sdk(value):
    assume(not isinstance(value, Content))
    content = as_content(value)
    if value is None:
        assert content.header == {"type": "empty"}
    elif isinstance(value, str):
        assert content.header == {"type": "text", "text": value}
    else:
        assert content.header == {"type": "json", "json": value}
    assert unpack_content(content.pack()) == content
    assert json.loads(json.dumps(content.header)) == content.header


@pytest.mark.parametrize("header", [None, [], "json", {"type": "nope"}, {"no": "type"}])
def test_content_from_header_refuses_non_contents(header):
    with pytest.raises(WireError):
        content_from_header(header)
