"""Bad input gets a clear error the client survives: tokens, JSON, LLM bodies, uploads."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import time

import httpx
import jwt
import pytest
from harness import Figure, ServedRoom
from meshagent.api import ApiScope, ParticipantToken, RoomException
from meshagent.api.participant_token import QueuesGrant
from typer.testing import CliRunner

from localmesh.cli import app
from localmesh.emulator import RoomServer
from localmesh.emulator.limits import Limits
from localmesh.fixtures.sdk import connect_meshagent_room
from localmesh.protocol.wire import encode_message, pack, unpack_content

PROMPT = 10.0


def _sdk_token(server: RoomServer, queues: int) -> str:
    token = ParticipantToken(name="many")
    token.add_room_grant("r")
    token.add_role_grant("agent")
    names = [f"queue-number-{i:06d}" for i in range(queues)]
    token.add_api_grant(ApiScope(queues=QueuesGrant(send=names, receive=names)))
    return token.to_jwt(api_key=server.api_key)


async def test_long_tokens_connect_and_too_long_ones_get_403_at_once():
    async with RoomServer() as server:
        medium = _sdk_token(server, 600)  # ~20 KB: the handshake parser used to answer 431
        assert 16_000 < len(medium) < 64 * 1024
        async with connect_meshagent_room(server.room_url("r"), medium) as room:
            await room.queues.send(name="queue-number-000001", message={"ok": True})
        huge = _sdk_token(server, 1500)  # ~90 KB: over max_token_bytes
        assert 64 * 1024 < len(huge) < 128 * 1024
        started = time.monotonic()
        with pytest.raises(RoomException, match="403"):
            async with asyncio.timeout(PROMPT):
                async with connect_meshagent_room(server.room_url("r"), huge):
                    pass
        took = time.monotonic() - started
        async with httpx.AsyncClient() as http:
            answer = await http.get(server.url + "/rooms/r", headers={
                "authorization": f"Bearer {huge}", "connection": "upgrade", "upgrade": "websocket",
                "sec-websocket-version": "13", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ=="})
        assert answer.status_code == 403
        assert "over the 65536-byte limit" in answer.headers["x-localmesh-reason"]
        enormous = _sdk_token(server, 5000)  # ~300 KB: over the request head limit
        with pytest.raises(RoomException, match="403"):
            async with asyncio.timeout(PROMPT):
                async with connect_meshagent_room(server.room_url("r"), enormous):
                    pass
    Figure(case=f"tokens of {len(huge) // 1024} KB and {len(enormous) // 1024} KB (grants listing"
                " 1,500 and 5,000 queues)",
           abuser_got=f"HTTP 403 with the reason; the SDK gave up in {took:.2f} s (no retry)",
           target="a 4xx the SDK does not retry for ever").record()


async def test_a_grant_named_by_a_list_is_403_not_500():
    async with RoomServer() as server:
        key = server.state.api_key
        token = jwt.encode({"name": "n", "kid": key.key_id, "grants": [
            {"name": ["room"], "scope": "r"}, {"name": "api", "scope": {}}]}, key.secret, algorithm="HS256")
        async with httpx.AsyncClient() as http:
            answer = await http.get(server.url + "/rooms/r", headers={
                "authorization": f"Bearer {token}", "connection": "upgrade", "upgrade": "websocket",
                "sec-websocket-version": "13", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ=="})
        assert answer.status_code == 403
        assert "grant name must be a string" in answer.headers["x-localmesh-reason"]
    Figure(case="grant whose name is a list", abuser_got="HTTP 403: a grant name must be a string",
           target="403 with a reason, not 500").record()


async def test_deep_json_and_huge_ints_get_a_bad_request_reply(caplog):
    import websockets

    async with RoomServer() as server:
        url, token = server.room_url("r"), server.mint_token(room="r", name="deep")
        async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {token}"},
                                      max_size=None) as ws:
            bodies = {
                "10,000 deep": b'{"toolkit":"queues","tool":"send","arguments":'
                               + b"[" * 10_000 + b"]" * 10_000 + b"}",
                "5,000-digit int": b'{"toolkit":"queues","tool":"send","n":' + b"7" * 5000 + b"}",
            }
            got = {}
            for message_id, (what, body) in enumerate(bodies.items(), start=1):
                data = len(body).to_bytes(8, "big") + body
                for frame in encode_message(message_id, "room.invoke_tool", data):
                    await ws.send(frame)
                async with asyncio.timeout(PROMPT):
                    while True:
                        frames = [await ws.recv()]
                        header = frames[0]
                        if int.from_bytes(header[:8], "big") == message_id and header[16:] == b"__response__":
                            count = int.from_bytes(header[12:16], "big")
                            frames += [await ws.recv() for _ in range(count)]
                            reply = unpack_content(b"".join(f[12:] for f in frames[1:]))
                            break
                assert reply.type == "error" and reply.header["code"] == 1002, reply.header
                got[what] = reply.header["text"]
            # the connection is still there
            for frame in encode_message(9, "room.list_toolkits", pack({})):
                await ws.send(frame)
    assert "nested more than 256 levels" in got["10,000 deep"]
    assert "4300 digits" in got["5,000-digit int"]
    assert "Traceback" not in caplog.text
    Figure(case="JSON nested 10,000 deep / a 5,000-digit integer",
           abuser_got="error 1002 naming the problem; connection stays up; no traceback logged",
           target="bad-request error, never a dropped connection").record()


async def test_llm_endpoint_refuses_deep_input_and_big_bodies_with_4xx():
    limits = Limits(llm_max_body_bytes=1024 * 1024)
    async with RoomServer(limits=limits) as server:
        headers = {"authorization": f"Bearer {server.api_key}"}
        deep = '{"model":"m","input":' + "[" * 1500 + "]" * 1500 + "}"
        async with httpx.AsyncClient(timeout=PROMPT) as http:
            nested = await http.post(server.url + "/openai/v1/responses", content=deep, headers=headers)
            big = await http.post(server.url + "/openai/v1/responses", headers=headers,
                                  content=json.dumps({"model": "m", "input": "x" * (2 * 1024 * 1024)}))
            odd = await http.post(server.url + "/openai/v1/responses", headers=headers,
                                  content='{"model":"m","input":"\\ud800"}')
            no_llm = await http.post(server.url + "/openai/v1/responses", content='{"input":"hi"}',
                                     headers={"authorization": "Bearer " + server.mint_token(
                                         room="r", name="n", api={"queues": {}})})
    assert nested.status_code == 400 and "nested more than" in nested.json()["error"]["message"]
    assert big.status_code == 413
    assert odd.status_code == 400 and "lone surrogate" in odd.json()["error"]["message"]
    assert no_llm.status_code == 401 and "no llm section" in no_llm.json()["error"]["message"]
    Figure(case="LLM endpoint: input nested 1,500 deep / body over the limit / lone surrogate",
           abuser_got="400 / 413 / 400, each naming the problem", target="4xx, never 500").record()


async def test_an_upload_over_the_limit_is_refused_before_its_bytes_are_stored():
    async with RoomServer(limits=Limits(max_file_bytes=1024 * 1024)) as server:
        token = server.mint_token(room="r", name="up")
        async with connect_meshagent_room(server.room_url("r"), token) as room:
            with pytest.raises(RoomException, match="over the 1048576-byte limit"):
                await room.storage.upload(path="big.bin", data=bytes(3 * 1024 * 1024))

            async def chunks():
                for _ in range(40):
                    yield bytes(64 * 1024)

            with pytest.raises(RoomException, match="over the 1048576-byte limit"):
                await room.storage.upload_stream(path="streamed.bin", chunks=chunks())
            assert not await room.storage.exists(path="big.bin")
            assert not await room.storage.exists(path="streamed.bin")
            await room.storage.upload(path="small.bin", data=bytes(1000))
    Figure(case="uploads over max_file_bytes (announced, and streamed without a size)",
           abuser_got="1002 'over the limit' before anything is stored",
           target="refused before its bytes are stored").record()


@pytest.mark.parametrize("option", [
    ("--limit", "max_file_bytes=1048576"),
    ("--limit", "max_upload_bytes=1048576"),  # the old name of the same limit
    ("--max-file-mb", "1"),  # deprecated: a note on stderr, the same limit
])
async def test_serve_has_one_file_limit_whichever_way_it_is_set(tmp_path, option):
    async with ServedRoom(tmp_path, extra=option) as served:
        async with connect_meshagent_room(served.room_url("r"), served.token("r", "up")) as room:
            with pytest.raises(RoomException, match=r"over the 1048576-byte limit \(max_file_bytes\)"):
                await room.storage.upload(path="big.bin", data=bytes(1024 * 1024 + 1))
            await room.storage.upload(path="fits.bin", data=bytes(1024 * 1024))
    deprecated = "--max-file-mb is deprecated" in served.log.read_text()
    assert deprecated == (option[0] == "--max-file-mb")


def test_serve_refuses_the_file_limit_given_twice() -> None:
    result = CliRunner().invoke(
        app, ["serve", "--max-file-mb", "1", "--limit", "max_file_bytes=5"])
    assert result.exit_code != 0 and "give the file limit once" in result.output


async def test_developer_logs_are_bounded():
    async with RoomServer(limits=Limits(developer_log_entries=5, developer_log_bytes=4096)) as server:
        token = server.mint_token(room="r", name="d")
        async with connect_meshagent_room(server.room_url("r"), token) as room:
            for i in range(20):
                await room.developer.log(type="t", data={"i": i})
            await room.developer.log(type="t", data={"big": "x" * 10_000})
        logs = server.developer_logs("r")
        assert len(logs) == 5 and logs[-1].data.get("localmesh_not_kept")
        assert [entry.data["i"] for entry in logs[:-1]] == [16, 17, 18, 19]


async def test_the_data_dir_is_private(tmp_path):
    async with RoomServer(data_dir=tmp_path / "data"):
        mode = stat.S_IMODE(os.stat(tmp_path / "data").st_mode)
        # files 0600; folders (blobs/, the file contents) 0700
        entries = {p.name: (p.is_dir(), stat.S_IMODE(p.stat().st_mode))
                   for p in (tmp_path / "data").iterdir()}
    assert mode == 0o700
    assert entries and all(m == (0o700 if folder else 0o600) for folder, m in entries.values()), entries


async def test_more_concurrent_uploads_than_request_slots_all_finish():
    # Streams wait on chunks the session must keep reading: they never hold its slots.
    async with RoomServer(limits=Limits(max_active_calls=4)) as server:
        token = server.mint_token(room="r", name="many")
        async with connect_meshagent_room(server.room_url("r"), token) as room:
            async with asyncio.timeout(PROMPT):
                await asyncio.gather(*(room.storage.upload(path=f"f{i}.bin", data=bytes(200_000))
                                       for i in range(12)))
                sends = [room.queues.send(name="q", message={"i": i}) for i in range(50)]
                await asyncio.gather(*sends)
            assert len(await room.storage.list(path="")) == 12
