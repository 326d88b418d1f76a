"""Helpers for running the real MeshAgent SDK against the emulator (or a real room).

Tokens here are built the SDK's way (``ParticipantToken`` + grants + ``to_jwt``), never
with the emulator's own minting, so the emulator is checked against what the SDK signs.
``server`` is the test's target (tests/compat/targets.py): a ``RoomServer`` or a
``RealService``; these helpers use only what both have.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from contextlib import AsyncExitStack
from importlib.metadata import version
from pathlib import Path
from typing import Any

import websockets
from localmesh_serve import Served, serve
from meshagent.api import ApiScope, ParticipantToken, RoomClient
from meshagent.api.websocket_protocol import WebSocketClientProtocol
from packaging.version import Version
from targets import room_name
from websockets.exceptions import ConnectionClosed

from localmesh.protocol.wire import (
    Content,
    Message,
    PacketAssembler,
    encode_message,
    pack,
    unpack,
    unpack_content,
)

# An LLM round trip, two tool calls and a storage write: far below this on 127.0.0.1.
LLM_ROUND_TRIPS = 20.0

# Bound for anything that should happen "at once" on 127.0.0.1: generous, so a loaded
# machine does not flake, yet far below the SDK's retry back-off or a long-poll window.
PROMPT = 10.0


def installed_version(distribution: str = "meshagent-api") -> Version:
    """The installed version of one of the SDK's distributions (the matrix installs them alike)."""
    return Version(version(distribution))


def sdk_token(
    server: Any,
    *,
    room: str,
    name: str = "tester",
    role: str | None = "agent",
    api: ApiScope | None = None,
    with_api: bool = True,
    **to_jwt: Any,
) -> str:
    """A participant JWT made by the real SDK, signed with the server's API key by default."""
    token = ParticipantToken(name=name)
    token.add_room_grant(room_name(server, room))
    if role is not None:
        token.add_role_grant(role)
    if with_api:
        token.add_api_grant(api if api is not None else ApiScope.agent_default())
    if not to_jwt:
        to_jwt = {"api_key": server.api_key}
    return token.to_jwt(**to_jwt)


def sdk_client(server: Any, room: str, token: str, **kwargs: Any) -> RoomClient:
    """A real RoomClient for ``room`` on ``server`` (enter it with ``async with``)."""
    protocol = WebSocketClientProtocol(url=server.room_url(room), token=token)
    return RoomClient(protocol_factory=protocol.create_factory(), **kwargs)


class RawRoom:
    """A bare websocket speaking the wire format through ``worker.wire``, for bad input.

    ``async with RawRoom(url, token) as raw``: the handshake (``room_ready`` and
    ``connected``) has been read; ``raw.ws`` is the ``websockets`` connection. With
    ``token=None`` no ``Authorization`` header is sent (old clients put it in ``url``).
    """

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url
        self.token = token
        self.assembler = PacketAssembler()
        self.ws: Any = None
        self.handshake: dict[str, dict[str, Any]] = {}
        self._next_id = 0

    async def __aenter__(self) -> RawRoom:
        self.ws = await websockets.connect(
            self.url,
            additional_headers={"Authorization": f"Bearer {self.token}"} if self.token else {},
            max_size=None, open_timeout=PROMPT,
        )
        async with asyncio.timeout(PROMPT):
            while len(self.handshake) < 2:
                message = await self.next_message()
                self.handshake[message.type] = unpack(message.data)[0]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ws.close()

    @property
    def participant_id(self) -> str:
        return self.handshake["connected"]["participantId"]

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    async def next_message(self) -> Message:
        while True:
            frame = await self.ws.recv()
            message = self.assembler.feed(frame)
            if message is not None:
                return message

    async def send_message(self, message_id: int, type: str, data: bytes) -> None:
        for frame in encode_message(message_id, type, data):
            await self.ws.send(frame)

    async def request(self, type: str, header: dict[str, Any], payload: bytes = b"") -> Content:
        """Send one message and return the content of the ``__response__`` to it."""
        message_id = self.new_id()
        await self.send_message(message_id, type, pack(header, payload))
        return await self.response_to(message_id)

    async def response_to(self, message_id: int) -> Content:
        async with asyncio.timeout(PROMPT):
            while True:
                message = await self.next_message()
                if message.type == "__response__" and message.id == message_id:
                    return unpack_content(message.data)

    async def closed_by_server(self) -> tuple[int, str]:
        """Wait for the server's close frame; return its code and reason."""
        async with asyncio.timeout(PROMPT):
            try:
                while True:
                    await self.ws.recv()
            except ConnectionClosed as closed:
                assert closed.rcvd is not None, "the server dropped the socket with no close frame"
                return closed.rcvd.code, closed.rcvd.reason


async def file_written(room: RoomClient, path: str, send: Callable[[], Any]) -> str:
    """Run ``send()``, then wait (bounded) for the room's ``file.updated`` event for ``path``;
    the file's text."""
    updated = asyncio.Event()
    wanted = path.lstrip("/")

    def on_updated(**event: Any) -> None:
        if str(event.get("path", "")).lstrip("/") == wanted:
            updated.set()

    room.storage.on("file.updated", on_updated)
    try:
        await send()
        async with asyncio.timeout(LLM_ROUND_TRIPS):
            await updated.wait()
    finally:
        room.storage.off("file.updated", on_updated)
    assert await room.storage.exists(path=path)
    return (await room.storage.download(path=path)).data.decode()


async def wait_for_transcript(
    server: Any, room: str, entries: int | Callable[[list[Any]], bool]
) -> list[Any]:
    """The room's LLM transcript once it has ``entries`` entries, or once ``entries(transcript)``
    holds (bounded poll)."""
    done = entries if callable(entries) else (lambda found: len(found) >= entries)
    async with asyncio.timeout(LLM_ROUND_TRIPS):
        while not done(server.llm.transcript(room)):
            await asyncio.sleep(0.02)
    return server.llm.transcript(room)
class ServedLocalmesh:
    """A real ``localmesh serve --in-memory --port 0`` process, as a user starts it.

    ``async with ServedLocalmesh(*more_args) as served``: it is listening, ``served.exports``
    holds the variables it printed (MESHAGENT_API_URL, MESHAGENT_API_KEY...). ``served.output``
    has all it printed once the block ends with SIGTERM, and ``served.returncode`` how it ended.
    """

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.args = args
        self.env = env
        self.exports: dict[str, str] = {}
        self.returncode: int | None = None
        self.output = ""
        self._stack = AsyncExitStack()
        self._served: Served | None = None

    async def __aenter__(self) -> ServedLocalmesh:
        async with AsyncExitStack() as stack:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="localmesh-serve-")))
            self._served = await stack.enter_async_context(serve(
                *self.args, data_dir=None, log=folder / "serve.log", env=self.env,
                startup=PROMPT * 3, stop_timeout=PROMPT * 3))
            self.exports = self._served.exports
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._served is not None
        try:
            self.returncode = await self._served.stop()
        finally:
            self.output = self._served.output()
            await self._stack.aclose()
