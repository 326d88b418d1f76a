"""Any bytes a client sends: the server answers or closes with a reason, logs no traceback,
and every other client carries on."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
import websockets
from harness import Figure
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localmesh.emulator import RoomServer
from localmesh.fixtures.sdk import connect_meshagent_room
from localmesh.protocol.wire import encode_message

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
headers = st.fixed_dictionaries({}, optional={
    "toolkit": st.sampled_from(["queues", "storage", "developer", "messaging", "x"]) | json_values,
    "tool": st.sampled_from(["send", "receive", "upload", "download", "list", "log", "enable"]) | json_values,
    "arguments": json_values | st.fixed_dictionaries({"type": st.sampled_from(["json", "control", "binary"]),
                                                      "json": json_values, "method": json_values}),
    "tool_call_id": json_values,
    "chunk": json_values,
})
types = st.sampled_from(["room.invoke_tool", "room.tool_call_request_chunk", "set_attributes",
                         "room.list_toolkits", "room.call", "nope"])


def _envelope(header: dict, cut: int | None) -> bytes:
    body = json.dumps(header).encode()
    data = len(body).to_bytes(8, "big") + body
    return data if cut is None else data[:cut]


messages = st.tuples(st.integers(0, 2**64 - 1), types, headers, st.none() | st.integers(0, 40))
frames = st.one_of(
    st.binary(max_size=40).map(lambda b: [b]),
    messages.map(lambda m: encode_message(m[0], m[1], _envelope(m[2], m[3]))),
)


@pytest.fixture(scope="module")
def loop_and_server():
    loop = asyncio.new_event_loop()
    server = RoomServer()
    loop.run_until_complete(server.start())
    yield loop, server
    loop.run_until_complete(server.stop())
    loop.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(frames, min_size=1, max_size=8))
def test_garbage_never_breaks_the_server(loop_and_server, caplog, batches):
    loop, server = loop_and_server
    caplog.set_level(logging.WARNING)
    loop.run_until_complete(_abuse_then_check(server, [f for batch in batches for f in batch]))
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not errors, [r.getMessage() for r in errors]


async def _abuse_then_check(server: RoomServer, sequence: list[bytes]) -> None:
    token = server.mint_token(room="fuzz", name="abuser")
    async with websockets.connect(server.room_url("fuzz"), max_size=None,
                                  additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        try:
            for frame in sequence:
                await ws.send(frame)
            await ws.send(b"\x00" * 7)  # a frame too short for any packet: the server closes
            async with asyncio.timeout(10):
                while True:
                    await ws.recv()
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd is not None, "closed without a close frame"
    good = server.mint_token(room="fuzz", name="ok")
    async with connect_meshagent_room(server.room_url("fuzz"), good) as room:
        async with asyncio.timeout(10):
            await room.queues.send(name="health", message={"ok": True})
            assert await room.queues.receive(name="health", wait=False) == {"ok": True}


def test_record_the_figure():
    Figure(case="hypothesis: 60 sequences of random frames and envelopes on a live socket",
           abuser_got="error replies, or a close frame with the reason",
           target="no traceback, no crash; other clients carry on").record()
