"""What older SDK clients need from the server, and the token some of them put in the URL.

SDK clients up to 0.42.x send their token as ``?token=<jwt>`` with no Authorization header;
up to 0.47.0 they wait for a reply to each request chunk (docs/sdk-versions.md). The version
matrix (noxfile.py) runs the whole compatibility suite with those real SDKs. The tests here
play an old client with raw frames, so they run with any installed SDK, and they check what
no client can see: everything the emulator's side logs.
"""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import websockets
from compat_helpers import PROMPT, RawRoom, ServedLocalmesh, installed_version, sdk_client, sdk_token
from meshagent.api import ApiScope, ParticipantToken
from websockets.exceptions import InvalidStatus

from localmesh.emulator import RoomServer
from localmesh.protocol.sdk_versions import CHUNKS_UNANSWERED_FROM
from localmesh.protocol.tokens import ApiKey
from localmesh.protocol.wire import pack, unpack_content

pytestmark = [
    pytest.mark.compat,
    pytest.mark.localmesh_only(reason="the emulator's own logs, output and raw frames"),
]

ROOM = "r"
OLD = "0.42.2"  # the last SDK version that puts its token in the URL
# Loggers of the test's own clients: they may print their URL; only the server's side counts.
CLIENT_SIDE = ("websockets.client", "meshagent", "aiohttp", "httpx", "httpcore", "openai", "asyncio")


class ServerLogs(logging.Handler):
    """Every line the emulator's side logs while active, DEBUG included, uvicorn's access
    lines too. Enter it after the server started: starting uvicorn resets its loggers."""

    LOGGERS = ("", "uvicorn", "uvicorn.access")

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self._levels: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(CLIENT_SIDE):
            return
        self.lines.append(f"{record.name}: {record.getMessage()}")
        if record.exc_info:
            self.lines.append(logging.Formatter().formatException(record.exc_info))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def __enter__(self) -> ServerLogs:
        for name in self.LOGGERS:
            logger = logging.getLogger(name)
            self._levels[name] = logger.level
            logger.setLevel(logging.DEBUG)
            logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        for name, level in self._levels.items():
            logging.getLogger(name).removeHandler(self)
            logging.getLogger(name).setLevel(level)


@pytest_asyncio.fixture
async def logged(tmp_path: Path):
    """A server logging at DEBUG, and everything its side logs."""
    async with RoomServer(data_dir=tmp_path / "lm", log_level="debug", long_poll_window=0.3) as server:
        with ServerLogs() as logs:
            yield server, logs


# The first part of every HS256 JWT the SDK makes: shared with any other JWT (`localmesh serve`
# prints one in the Studio's login link), so finding it proves nothing.
JWT_HEADER = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"


def secret_parts(token: str) -> set[str]:
    """The token and each of its dot-separated parts but the common JWT header."""
    return {token, *token.split(".")} - {JWT_HEADER}


def _url_with_token(server: Any, token: str, version: str | None = OLD) -> str:
    query = f"token={token}" + (f"&v={version}" if version else "")
    return f"{server.room_url(ROOM)}?{query}"


async def test_an_old_client_joins_with_the_token_in_its_url(logged):
    server, logs = logged
    jwt_text = sdk_token(server, room=ROOM, name="old-timer")
    async with RawRoom(_url_with_token(server, jwt_text), None) as raw:
        assert raw.handshake["connected"]["attributes"]["name"] == "old-timer"
        sent = await raw.request("room.invoke_tool", {
            "toolkit": "queues", "tool": "send", "tool_call_id": "t1",
            "arguments": {"type": "json", "json": {"name": "q", "message": {"hi": 1}}},
        })
        assert sent.type == "empty"
        (session,) = server.state.rooms.sessions(ROOM)
        assert session.client.announced == OLD and session.client.awaits_chunk_replies
    assert jwt_text not in logs.text
    # Nor does the timeline (what `localmesh timeline`, the Studio and failure reports show).
    events = server.history.events(ROOM)
    assert {e.kind for e in events} >= {"connect", "call", "queue.send", "disconnect"}
    shown = "\n".join(f"{e.line()} {e.to_dict()}" for e in events)
    assert not any(part in shown for part in secret_parts(jwt_text))
    # uvicorn's access line names the request, without its token; the websockets library's
    # request line had it, masked: so both kinds of line were seen, and neither kept it.
    assert f'"WebSocket /rooms/{ROOM}?v={OLD}" [accepted]' in logs.text
    assert f"GET /rooms/{ROOM}?token=[redacted]&v={OLD}" in logs.text


def _refused_url_tokens(server: Any) -> dict[str, tuple[str, str]]:
    """name -> (token, a word the refusal reason must contain)."""
    key = ApiKey.parse(server.api_key)
    wrong_key = ApiKey(key.key_id, key.project_id, "not-the-secret-" + "z" * 24).text
    past = datetime.now(UTC) - timedelta(minutes=5)
    return {
        "expired": (sdk_token(server, room=ROOM, api_key=server.api_key, expiration=past), "expired"),
        "other room": (sdk_token(server, room="elsewhere"), "elsewhere"),
        "bad signature": (sdk_token(server, room=ROOM, api_key=wrong_key), "signature"),
        "not a jwt": ("a-secret-looking-string-that-is-no-jwt", "JWT"),
        "three parts, none valid": ("secretpart1.secretpart2.secretpart3", "JWT"),
    }


@pytest.mark.parametrize("case", ["expired", "other room", "bad signature", "not a jwt",
                                  "three parts, none valid"])
async def test_a_refused_url_token_is_in_no_reply_and_no_log_line(logged, case):
    server, logs = logged
    jwt_text, reason_word = _refused_url_tokens(server)[case]
    with pytest.raises(InvalidStatus) as raised:
        async with websockets.connect(_url_with_token(server, jwt_text), open_timeout=PROMPT):
            pass
    response = raised.value.response
    assert response.status_code == 403
    reason = response.headers["x-localmesh-reason"]
    assert reason_word.lower() in reason.lower(), reason
    reply_text = response.body.decode() + "\n".join(f"{k}: {v}" for k, v in response.headers.raw_items())
    timeline = "\n".join(f"{e.line()} {e.to_dict()}" for e in server.history.events())
    for part in secret_parts(jwt_text):
        assert part not in reply_text
        assert part not in logs.text
        assert part not in timeline
    assert f"refused a connection: {reason}" in logs.text  # the refusal was logged, without it
    assert f'"WebSocket /rooms/{ROOM}?v={OLD}" 403' in logs.text


async def test_the_header_wins_over_a_token_in_the_url(logged):
    server, logs = logged
    in_header = sdk_token(server, room=ROOM, name="from-the-header")
    in_url = sdk_token(server, room=ROOM, name="from-the-url")
    async with RawRoom(_url_with_token(server, in_url, version=None), in_header) as raw:
        assert raw.handshake["connected"]["attributes"]["name"] == "from-the-header"
    assert in_url not in logs.text and in_header not in logs.text
    # at DEBUG the websockets library logs every request header: the header's token is masked too
    assert "authorization: bearer [redacted]" in logs.text.lower()


@pytest.mark.parametrize(("announced", "answered"), [
    ("0.42.2", True), ("0.46.4", True), ("0.47.0", True),
    ("0.47.1", False), ("0.50.1", False), ("0.56.0", False),
    (None, False), ("not-a-version", False),
])
async def test_request_chunks_are_answered_only_for_clients_that_wait(server, announced, answered):
    query = f"?v={announced}" if announced else ""
    async with RawRoom(server.room_url(ROOM) + query, sdk_token(server, room=ROOM)) as raw:
        # A chunk for a call that does not exist (as the late close of a finished call is),
        # then a request: the server handles a connection's messages in order, so a reply to
        # the chunk would come before the reply to the request.
        chunk_id, probe_id = raw.new_id(), raw.new_id()
        await raw.send_message(chunk_id, "room.tool_call_request_chunk", pack(
            {"tool_call_id": "no-such-call", "chunk": {"type": "control", "method": "close"}}))
        await raw.send_message(probe_id, "room.list_toolkits", pack({}))
        replies: dict[int, str] = {}
        async with asyncio.timeout(PROMPT):
            while probe_id not in replies:
                message = await raw.next_message()
                if message.type == "__response__":
                    replies[message.id] = unpack_content(message.data).type
    assert replies == ({chunk_id: "empty", probe_id: "json"} if answered else {probe_id: "json"})


async def test_the_installed_sdk_announces_its_version_and_its_token_is_never_logged(logged):
    """The real client of this run (0.42.x puts its token in the URL): a streamed upload and
    download work, the server reads the version it announced, and logs no token."""
    server, logs = logged
    version = installed_version()
    jwt_text = sdk_token(server, room=ROOM, name="sdk")
    async with sdk_client(server, ROOM, jwt_text) as room:
        (session,) = server.state.rooms.sessions(ROOM)
        assert session.client.version == version
        assert session.client.awaits_chunk_replies == (version < CHUNKS_UNANSWERED_FROM)
        data = os.urandom(150_000)  # a few pull rounds each way
        async with asyncio.timeout(PROMPT):
            await room.storage.upload(path="blob.bin", data=data)
            assert (await room.storage.download(path="blob.bin")).data == data
    assert f'"WebSocket /rooms/{ROOM}?v={version}" [accepted]' in logs.text
    assert jwt_text not in logs.text


@pytest.mark.slow
async def test_localmesh_serve_prints_no_url_token(tmp_path):
    """A real `localmesh serve` process, logging as it does for a user (uvicorn's access
    lines included): a URL token, accepted or refused, is nowhere in what it prints."""
    async with ServedLocalmesh("--long-poll-window", "1") as served:
        url = served.exports["MESHAGENT_ROOM_URL"] + f"/rooms/{ROOM}"
        token = ParticipantToken(name="old-timer")
        token.add_room_grant(ROOM)
        token.add_role_grant("agent")
        token.add_api_grant(ApiScope.agent_default())
        accepted = token.to_jwt(api_key=served.exports["MESHAGENT_API_KEY"])
        async with RawRoom(f"{url}?token={accepted}&v={OLD}", None) as raw:
            assert raw.handshake["connected"]["attributes"]["name"] == "old-timer"
        refused = "eyJzZWNyZXQiOiJ5ZXMifQ.not-a-real.signature-but-secret"
        with pytest.raises(InvalidStatus):
            async with websockets.connect(f"{url}?token={refused}&v={OLD}", open_timeout=PROMPT):
                pass
    output = served.output
    assert served.returncode == 0, output
    assert f'"WebSocket /rooms/{ROOM}?v={OLD}" [accepted]' in output
    assert f'"WebSocket /rooms/{ROOM}?v={OLD}" 403' in output
    for secret in (*secret_parts(accepted), *secret_parts(refused)):
        assert secret not in output
