"""Bad input on one connection never hurts the server or the other connections.

Raw frames are built with ``worker.wire`` over a bare ``websockets`` connection; a real
SDK client stays connected alongside and must keep working afterwards.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from compat_helpers import PROMPT, RawRoom, sdk_client, sdk_token
from meshagent.api import RoomException

from localmesh.emulator import RoomServer
from localmesh.protocol.wire import ENVELOPE_LENGTH, pack

pytestmark = [
    pytest.mark.compat,
    pytest.mark.localmesh_only(reason="raw frames, localmesh's own error texts and server state"),
]

ROOM = "r"


async def _round_trip(room, tag: str) -> None:
    """A queue round trip on a real SDK session: proof it still works."""
    async with asyncio.timeout(PROMPT):
        await room.queues.send(name="health", message={"tag": tag})
        assert await room.queues.receive(name="health", wait=False) == {"tag": tag}


def _session_of(server: RoomServer, participant_id: str):
    for session in server.state.rooms.sessions(ROOM):
        if session.participant_id == participant_id:
            return session
    return None


async def _gone(server: RoomServer, participant_id: str) -> None:
    """Wait until the server has ended the raw session and let go of it."""
    session = _session_of(server, participant_id)
    if session is not None:
        async with asyncio.timeout(PROMPT):
            await session.closed.wait()
    assert _session_of(server, participant_id) is None


def _header_packet(message_id: int, count: int, type: str) -> bytes:
    return message_id.to_bytes(8, "big") + (0).to_bytes(4, "big") + count.to_bytes(4, "big") + (
        type.encode())


def _data_packet(message_id: int, index: int, data: bytes) -> bytes:
    return message_id.to_bytes(8, "big") + index.to_bytes(4, "big") + data


FRAMING_FAULTS = {
    "too short": [b"\x00\x01\x02"],
    "empty frame": [b""],
    "header without count": [(1).to_bytes(8, "big") + (0).to_bytes(4, "big") + b"\x00"],
    "data packet with no message": [_data_packet(1, 1, b"x")],
    "wrong packet index": [_header_packet(1, 2, "room.list_toolkits"), _data_packet(1, 2, b"x")],
    "packet of another message": [_header_packet(1, 1, "room.list_toolkits"),
                                  _data_packet(2, 1, b"x")],
    "header before the last message ended": [_header_packet(1, 2, "room.list_toolkits"),
                                             _data_packet(1, 1, b"x"),
                                             _header_packet(2, 0, "room.list_toolkits")],
    "type not utf-8": [_header_packet(1, 0, "") + b"\xff\xfe"],
}


@pytest.mark.parametrize("fault", list(FRAMING_FAULTS))
async def test_broken_framing_closes_only_that_session_with_a_reason(server, fault):
    async with sdk_client(server, ROOM, sdk_token(server, room=ROOM, name="good")) as good:
        async with RawRoom(server.room_url(ROOM), sdk_token(server, room=ROOM, name="bad")) as raw:
            for frame in FRAMING_FAULTS[fault]:
                await raw.ws.send(frame)
            code, reason = await raw.closed_by_server()
            assert code == 1007
            assert reason.startswith("bad frame:") and len(reason) > len("bad frame: ")
            await _gone(server, raw.participant_id)
        await _round_trip(good, fault)
        assert [p["attributes"]["name"] for p in server.participants(ROOM)] == ["good"]


async def test_text_frame_closes_only_that_session(server):
    async with sdk_client(server, ROOM, sdk_token(server, room=ROOM, name="good")) as good:
        async with RawRoom(server.room_url(ROOM), sdk_token(server, room=ROOM, name="bad")) as raw:
            await raw.ws.send("hello, I am text")
            code, reason = await raw.closed_by_server()
            assert code == 1003
            assert "binary" in reason
            await _gone(server, raw.participant_id)
        await _round_trip(good, "text")


ENVELOPE_FAULTS = {
    "shorter than the length prefix": b"\x00\x00\x01",
    "length past the end": (500).to_bytes(ENVELOPE_LENGTH, "big") + b"{}",
    "header not json": (5).to_bytes(ENVELOPE_LENGTH, "big") + b"{nope",
    "header not utf-8": (2).to_bytes(ENVELOPE_LENGTH, "big") + b"\xff\xfe",
    "header is a list": (2).to_bytes(ENVELOPE_LENGTH, "big") + b"[]",
    "header is a string": (5).to_bytes(ENVELOPE_LENGTH, "big") + b'"str"',
}


@pytest.mark.parametrize("fault", list(ENVELOPE_FAULTS))
async def test_bad_envelope_gets_an_error_reply_and_the_session_goes_on(server, fault):
    async with sdk_client(server, ROOM, sdk_token(server, room=ROOM, name="good")) as good:
        async with RawRoom(server.room_url(ROOM), sdk_token(server, room=ROOM, name="bad")) as raw:
            message_id = raw.new_id()
            await raw.send_message(message_id, "room.invoke_tool", ENVELOPE_FAULTS[fault])
            reply = await raw.response_to(message_id)
            assert reply.type == "error"
            assert reply.header["code"] == 1002
            assert "envelope" in reply.header["text"]
            # the same raw session still answers a well-formed request
            listed = await raw.request("room.list_toolkits", {})
            assert listed.header == {"type": "json", "json": {"tools": {}}}
        await _round_trip(good, fault)


@pytest.mark.parametrize("header", [
    {"toolkit": "queues"},  # no tool
    {"toolkit": 3, "tool": "list"},
    {"toolkit": "queues", "tool": "list", "arguments": {"type": "no-such-content"}},
    {"toolkit": "queues", "tool": "list", "arguments": "not an object"},
    {"toolkit": "queues", "tool": "send", "arguments": {"type": "text", "text": "hi"}},
    {"toolkit": "queues", "tool": "send", "arguments": {"type": "json", "json": {"name": ""}}},
    {"toolkit": "queues", "tool": "receive",
     "arguments": {"type": "json", "json": {"name": "q", "wait": "yes"}}},
    {"toolkit": "storage", "tool": "upload", "arguments": {"type": "json", "json": {}}},
])
async def test_malformed_invoke_tool_gets_an_error_reply(server, header):
    async with sdk_client(server, ROOM, sdk_token(server, room=ROOM, name="good")) as good:
        async with RawRoom(server.room_url(ROOM), sdk_token(server, room=ROOM, name="bad")) as raw:
            reply = await raw.request("room.invoke_tool", header)
            assert reply.type == "error", reply.header
            assert reply.header["code"] == 1002
            assert reply.header["text"]
        await _round_trip(good, json.dumps(header))


async def test_unknown_message_type_gets_an_error_reply(server):
    async with RawRoom(server.room_url(ROOM), sdk_token(server, room=ROOM)) as raw:
        reply = await raw.request("room.teleport", {"where": "mars"})
        assert reply.type == "error"
        assert "room.teleport" in reply.header["text"]
        reply = await raw.request("room.register_toolkit", {"name": "mine", "tools": {}})
        assert reply.type == "error"
        assert "not supported by localmesh" in reply.header["text"]
        assert (await raw.request("room.list_toolkits", {})).type == "json"


async def test_stray_request_chunks_are_ignored(server):
    async with RawRoom(server.room_url(ROOM), sdk_token(server, room=ROOM)) as raw:
        # chunks for calls that never existed: no reply, no harm
        for chunk in ({"type": "control", "method": "close"}, "garbage", None):
            await raw.send_message(raw.new_id(), "room.tool_call_request_chunk",
                                   pack({"tool_call_id": "nope", "chunk": chunk}))
        assert (await raw.request("room.list_toolkits", {})).type == "json"


async def test_oversized_message_gets_an_error_reply_and_the_connection_stays(tmp_path):
    async with RoomServer(data_dir=tmp_path / "small", max_message_bytes=8 * 1024) as server:
        async with sdk_client(server, ROOM, sdk_token(server, room=ROOM, name="good")) as good:
            async with RawRoom(server.room_url(ROOM), sdk_token(server, room=ROOM)) as raw:
                # refused as soon as the header packet announces too many packets
                await raw.ws.send(_header_packet(1, 1000, "room.invoke_tool"))
                reply = await raw.response_to(1)
                assert reply.type == "error" and reply.header["code"] == 1002
                assert "exceeds the limit" in reply.header["text"]
                # the rest of that message is read and dropped; the connection goes on
                for index in range(1, 1001):
                    await raw.ws.send((1).to_bytes(8, "big") + index.to_bytes(4, "big") + bytes(1024))
                assert (await raw.request("room.list_toolkits", {})).type == "json"
            await _round_trip(good, "after oversize")
            # a real client's message over the limit: an error for that call only
            with pytest.raises(RoomException, match="exceeds the limit"):
                async with asyncio.timeout(PROMPT):
                    await good.queues.send(name="big", message={"x": "y" * 20_000})
            await _round_trip(good, "after its own oversize")


async def test_unknown_toolkit_or_tool_names_both(server):
    async with sdk_client(server, ROOM, sdk_token(server, room=ROOM)) as room:
        with pytest.raises(RoomException) as raised:
            await room.invoke(toolkit="weather", tool="forecast", input={"city": "Oslo"})
        text = str(raised.value)
        assert "weather" in text and "forecast" in text and "not supported by localmesh" in text
        with pytest.raises(RoomException) as raised:
            await room.invoke(toolkit="queues", tool="teleport", input={})
        text = str(raised.value)
        assert "queues" in text and "teleport" in text and "not supported by localmesh" in text
        await _round_trip(room, "after unknown tool")


async def test_list_toolkits(server):
    async with sdk_client(server, ROOM, sdk_token(server, room=ROOM)) as room:
        assert await room.list_toolkits() == []
        assert await room.list_toolkits(participant_name="nobody", timeout=1) == []


async def test_set_attributes_reaches_the_server(server):
    async with sdk_client(server, ROOM, sdk_token(server, room=ROOM, name="agent-7")) as room:
        assert room.local_participant.get_attribute("name") == "agent-7"
        room.local_participant.set_attribute("status", "busy")
        # the server reads a connection's messages in order: once this answers, it has both
        await room.queues.list()
        (me,) = server.participants(ROOM)
        assert me["attributes"] == {"name": "agent-7", "status": "busy"}
        assert me["id"] == room.local_participant.id
        assert me["role"] == "agent"


async def test_messaging_enable_comes_online_and_lists_others(server):
    async with (
        sdk_client(server, ROOM, sdk_token(server, room=ROOM, name="first")),
        sdk_client(server, ROOM, sdk_token(server, room=ROOM, name="second")) as second,
    ):
        online = asyncio.Event()
        second.messaging.on("online", online.set)
        assert not second.messaging.online
        second.messaging.enable()
        async with asyncio.timeout(PROMPT):
            await online.wait()
        assert second.messaging.online
        names = [p.get_attribute("name") for p in second.messaging.remote_participants]
        assert names == ["first"]
        await _round_trip(second, "after messaging")


async def test_developer_log_is_recorded(server):
    async with sdk_client(server, ROOM, sdk_token(server, room=ROOM, name="dev")) as room:
        await room.developer.log(type="step", data={"n": 1, "text": "ünïcode"})
        (entry,) = server.developer_logs(ROOM)
        assert (entry.participant, entry.type, entry.data) == (
            "dev", "step", {"n": 1, "text": "ünïcode"})


async def test_a_stream_the_client_abandons_gets_a_timeout_error_and_the_session_goes_on(
    server, monkeypatch
):
    import localmesh.emulator.toolkits.storage as storage_toolkit

    monkeypatch.setattr(storage_toolkit, "CHUNK_TIMEOUT", 0.2)
    async with RawRoom(server.room_url(ROOM), sdk_token(server, room=ROOM)) as raw:
        # An upload opened as a stream, whose start chunk never comes.
        reply = await raw.request("room.invoke_tool", {
            "toolkit": "storage", "tool": "upload", "tool_call_id": "abandoned",
            "arguments": {"type": "control", "method": "open"},
        })
        assert reply.type == "error", reply.header
        assert reply.header["code"] == 1008
        assert "timed out waiting for the client's stream" in reply.header["text"]
        listed = await raw.request("room.invoke_tool", {
            "toolkit": "queues", "tool": "list", "arguments": {"type": "json", "json": {}},
        })
        assert listed.header == {"type": "json", "json": {"queues": []}}
