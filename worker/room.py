"""The room client: connect, call room toolkits, and reconnect after a dropped connection.

``RoomClient`` owns at most one live ``Connection``. When the TCP connection drops (no
close frame), requests in flight fail with ``ConnectionLost`` and the client reconnects
in the background with capped, jittered backoff; new requests wait for the new
connection. A close frame from the server is final, as in the MeshAgent SDK.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from localmesh.protocol.error_codes import UNEXPECTED_RESPONSE_TYPE
from localmesh.protocol.wire import Content, as_content, control_open
from localmesh.worker.backoff import Backoff
from localmesh.worker.connection import (
    Connection,
    EventHandler,
    HandshakeRefused,
    OrphanHandler,
    SessionInfo,
)
from localmesh.worker.errors import ConnectionLost, RoomClosed, RoomError
from localmesh.worker.storage_client import StorageClient
from localmesh.worker.streams import ToolStream

logger = logging.getLogger("localmesh.worker.room")

Sleep = Callable[[float], Awaitable[None]]
# 401 may be a token the server has not seen yet; the SDK retries it too. 403/404 are final.
_RETRYABLE_STATUSES = frozenset({401, 408, 429, 500, 502, 503, 504})


class ToolCallIds:
    """Fresh ``tool_call_id``s: 32 hex digits like the SDK's uuid4().hex, but a random
    64-bit prefix drawn once per client and a counter (uuid4 per call costs a system call
    and an object). The counter outlives reconnects, and the prefix tells clients apart,
    so an id is never used twice in a room (the server keys chunk streams by it)."""

    def __init__(self) -> None:
        self.prefix = secrets.token_hex(8)
        self._counter = itertools.count(1)

    def next(self) -> str:
        return f"{self.prefix}{next(self._counter):016x}"


def room_websocket_url(base_url: str, room: str) -> str:
    """``{ws base}/rooms/{room}`` for an ``http(s)://`` or ``ws(s)://`` base URL."""
    base = base_url.rstrip("/")
    if base.startswith("https:"):
        base = "wss:" + base[len("https:"):]
    elif base.startswith("http:"):
        base = "ws:" + base[len("http:"):]
    return f"{base}/rooms/{room}"


class RoomClient:
    """A participant's connection to one room.

    ``url`` is the server's base URL (``http://127.0.0.1:8765``), ``token`` a participant
    JWT for ``room``. Use as ``async with RoomClient(url, room, token) as room: ...``.
    """

    def __init__(
        self,
        url: str,
        room: str,
        token: str,
        *,
        reconnect: bool = True,
        reconnect_backoff: Backoff | None = None,
        reconnect_wait: float = 30.0,
        connect_timeout: float = 10.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.url = url
        self.room_name = room
        self.token = token
        self.websocket_url = room_websocket_url(url, room)
        self._reconnect = reconnect
        self._backoff = reconnect_backoff or Backoff(base=0.1, cap=5.0)
        self._reconnect_wait = reconnect_wait
        self._connect_timeout = connect_timeout
        self._sleep = sleep
        self._connection: Connection | None = None
        self._changed = asyncio.Condition()  # notified when the connection is replaced or ends
        self._final_error: RoomError | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._listeners: dict[str, list[EventHandler]] = {}
        self.reconnects = 0
        self._call_ids = ToolCallIds()
        # The local participant's attributes: the server's (``name``…) plus ours; re-sent
        # after every reconnect, as the MeshAgent client does.
        self.attributes: dict[str, Any] = {}
        self.queues = QueuesClient(self)
        self.storage = StorageClient(self)
        self.developer = DeveloperClient(self)

    @classmethod
    def for_room_url(cls, room_url: str, token: str, **options: Any) -> RoomClient:
        """A client for a full room URL (``ws://host:port/rooms/NAME``), the form a
        ``room.call`` webhook hands to the service it calls."""
        base, separator, room = room_url.split("?", 1)[0].rpartition("/rooms/")
        if not separator or not base or not room or "/" in room:
            raise ValueError(f"{room_url!r} is not a room URL (<server>/rooms/<name>)")
        return cls(base, unquote(room), token, **options)

    # ------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> RoomClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Connect once; raises ``RoomError`` if the room cannot be joined."""
        self._connection = await self._open()
        self.attributes = dict(self._connection.session.attributes)
        self._supervisor = asyncio.create_task(self._supervise(), name="room-reconnect")

    async def close(self) -> None:
        if self._background:
            # Orphaned queue messages are being put back; let them land before closing.
            await asyncio.wait(self._background, timeout=5.0)
        self._final_error = self._final_error or RoomClosed("the room client is closed")
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        if self._connection is not None:
            await self._connection.close()
        await self._notify()

    @property
    def connected(self) -> bool:
        """True while a handshaken connection is open (False while reconnecting)."""
        return (
            self._final_error is None
            and self._connection is not None
            and self._connection.is_open
        )

    @property
    def session(self) -> SessionInfo:
        return self._require_connection_now().session

    @property
    def participant_id(self) -> str:
        return self.session.participant_id

    @property
    def participant_name(self) -> str:
        return str(self.session.attributes.get("name", ""))

    def on(self, event_type: str, handler: EventHandler) -> None:
        """Call ``handler(type, header, payload)`` for pushed messages such as
        ``storage.file.updated`` or ``developer.log``."""
        self._listeners.setdefault(event_type, []).append(handler)

    async def wait_connected(self, *, reconnects: int = 0) -> None:
        """Wait until connected after at least ``reconnects`` reconnections."""
        async with self._changed:
            await self._changed.wait_for(
                lambda: (self.connected and self.reconnects >= reconnects)
                or self._final_error is not None
            )
        if self._final_error is not None:
            raise self._final_error

    async def wait_closed(self) -> None:
        """Return when the client is closed for good (not while it reconnects)."""
        if self._supervisor is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._supervisor)

    # ------------------------------------------------------------ connecting

    async def _open(self) -> Connection:
        return await Connection.open(
            self.websocket_url, self.token, timeout=self._connect_timeout, on_event=self._emit
        )

    def _emit(self, event_type: str, header: dict[str, Any], payload: bytes) -> None:
        for handler in self._listeners.get(event_type, ()):
            try:
                handler(event_type, header, payload)
            except Exception:
                logger.exception("room event handler for %s failed", event_type)

    async def _supervise(self) -> None:
        """Wait for the connection to end; reconnect if it dropped."""
        while True:
            connection = self._connection
            assert connection is not None
            await connection.closed.wait()
            if not (connection.dropped and self._reconnect):
                self._final_error = RoomClosed(f"room connection closed: {connection.close_reason}")
                await self._notify()
                return
            logger.warning("room connection dropped; reconnecting")
            try:
                replacement = await self._reconnect_with_backoff()
            except RoomError as error:
                self._final_error = error
                await self._notify()
                return
            # Before any other request can use the new connection, as the MeshAgent client.
            await self._resend_attributes(replacement)
            self._connection = replacement
            self.reconnects += 1
            await self._notify()
            logger.info("room connection re-established (reconnect %d)", self.reconnects)

    async def _reconnect_with_backoff(self) -> Connection:
        self._backoff.reset()
        while True:
            await self._sleep(self._backoff.next_delay())
            try:
                return await self._open()
            except HandshakeRefused as error:
                if error.status not in _RETRYABLE_STATUSES:
                    raise
                logger.info("reconnect refused (%s); retrying", error)
            except ConnectionLost as error:
                logger.info("reconnect failed (%s); retrying", error)

    async def _resend_attributes(self, connection: Connection) -> None:
        """After a reconnect, before any other request: ``set_attributes`` with all of ours
        (the new session's attributes, overridden by the ones we set)."""
        self.attributes = {**connection.session.attributes, **self.attributes}
        if not self.attributes:
            return
        try:
            await connection.send("set_attributes", dict(self.attributes))
        except RoomError as error:  # dropped again: the supervisor sees it next
            logger.info("could not re-send attributes after reconnecting: %s", error)

    async def set_attribute(self, name: str, value: Any) -> None:
        """Set one of our participant attributes (``set_attributes``, no reply expected)."""
        self.attributes[name] = value
        connection = await self.connection()
        await connection.send("set_attributes", {name: value})

    def _require_connection_now(self) -> Connection:
        if self._connection is None:
            raise RoomClosed("the room client is not connected; use 'async with RoomClient(...)'")
        return self._connection

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def connection(self) -> Connection:
        """The live connection, waiting (bounded) while a reconnect is in progress."""
        self._require_connection_now()
        if not self.connected and self._final_error is None:
            try:
                async with asyncio.timeout(self._reconnect_wait), self._changed:
                    await self._changed.wait_for(
                        lambda: self.connected or self._final_error is not None
                    )
            except TimeoutError:
                raise ConnectionLost(
                    f"not reconnected to room {self.room_name!r} within {self._reconnect_wait} s"
                ) from None
        if self._final_error is not None:
            raise self._final_error
        return self._require_connection_now()

    # ------------------------------------------------------------ invoking tools

    def _tool_header(
        self, toolkit: str, tool: str, arguments: dict[str, Any], participant_id: str | None = None
    ) -> dict[str, Any]:
        """The ``room.invoke_tool`` header, ``arguments`` being a content's header."""
        return {
            "toolkit": toolkit,
            "tool": tool,
            "arguments": arguments,
            "tool_call_id": self._call_ids.next(),
            "participant_id": participant_id,  # None: a toolkit built into the room
            "on_behalf_of_id": None,
        }

    async def invoke(
        self,
        toolkit: str,
        tool: str,
        arguments: Any = None,
        *,
        participant_id: str | None = None,
        on_orphan: OrphanHandler | None = None,
    ) -> Content:
        """Call ``toolkit.tool``; a dict becomes ``json`` content, a str ``text``, None ``empty``.

        Returns the reply content; an ``error`` reply raises ``RoomError``.
        """
        if type(arguments) is dict:  # most calls: json content, built here
            header: dict[str, Any] = {"type": "json", "json": arguments}
            payload = b""
        else:
            content = as_content(arguments)
            header, payload = content.header, content.payload
        connection = self._connection
        if connection is None or not connection.is_open or self._final_error is not None:
            connection = await self.connection()  # not connected: wait for it, or raise
        return await connection.request(
            "room.invoke_tool",
            self._tool_header(toolkit, tool, header, participant_id),
            payload,
            on_orphan=on_orphan,
        )

    async def invoke_json(self, toolkit: str, tool: str, arguments: dict[str, Any]) -> Any:
        """Call a tool whose reply must be ``json`` content; return the JSON value."""
        reply = await self.invoke(toolkit, tool, arguments)
        if reply.type != "json":
            raise RoomError(
                f"unexpected return type from {toolkit}.{tool}: {reply.type}",
                UNEXPECTED_RESPONSE_TYPE,
            )
        return reply.header.get("json")

    async def list_toolkits(self) -> dict[str, Any]:
        """The toolkits registered in the room: ``{name: {title, description, tools: {...}}}``."""
        connection = await self.connection()
        reply = await connection.request("room.list_toolkits", {})
        if reply.type != "json" or not isinstance(reply.header.get("json"), dict):
            raise RoomError(
                "unexpected return type from room.list_toolkits", UNEXPECTED_RESPONSE_TYPE
            )
        return dict(reply.header["json"].get("tools") or {})

    async def open_tool_stream(self, toolkit: str, tool: str) -> ToolStream:
        """Start a streamed tool call (§4.4); use the result as an async context manager."""
        connection = await self.connection()
        header = self._tool_header(toolkit, tool, control_open().header)
        stream = connection.open_stream(header["tool_call_id"])
        try:
            reply = await connection.send_request("room.invoke_tool", header)
        except BaseException:
            connection.close_stream(header["tool_call_id"])
            raise
        return ToolStream(connection, header["tool_call_id"], reply, stream)

    def _in_background(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


# ---------------------------------------------------------------- queues and developer


@dataclass(frozen=True)
class QueueInfo:
    name: str
    size: int


class QueuesClient:
    """The room's ``queues`` toolkit."""

    def __init__(self, room: RoomClient) -> None:
        self._room = room

    async def send(self, name: str, message: dict[str, Any], *, create: bool = True) -> None:
        await self._room.invoke(
            "queues", "send", {"name": name, "create": create, "message": message}
        )

    async def receive(
        self, name: str, *, create: bool = True, wait: bool = True
    ) -> dict[str, Any] | str | None:
        """Pop the queue's head message; ``None`` when there is none (or a long poll expired).

        If the caller is cancelled while a long poll is pending and the server then hands
        us a message anyway, it is sent back to the queue rather than lost.
        """

        def put_back(content: Content) -> None:
            if content.type not in ("json", "text"):
                return  # empty (the long poll expired) or an error: nothing was taken
            message = _queue_message(content)
            if message is not None:
                logger.info("returning a message received after cancellation to %r", name)
                self._room._in_background(self.send(name, message))

        reply = await self._room.invoke(
            "queues",
            "receive",
            {"name": name, "create": create, "wait": wait},
            on_orphan=put_back,
        )
        return _queue_message(reply)

    async def list(self) -> list[QueueInfo]:
        value = await self._room.invoke_json("queues", "list", {})
        return [QueueInfo(str(q["name"]), int(q.get("size", 0))) for q in value["queues"]]

    async def open(self, name: str) -> None:
        await self._room.invoke("queues", "open", {"name": name})

    async def drain(self, name: str) -> None:
        await self._room.invoke("queues", "drain", {"name": name})

    async def close(self, name: str) -> None:
        await self._room.invoke("queues", "close", {"name": name})


def _queue_message(content: Content) -> Any:
    header = content.header
    kind = header["type"]
    if kind == "json":
        return header.get("json")
    if kind == "text":
        return header.get("text")
    if kind == "empty":
        return None
    raise RoomError(f"unexpected return type from queues.receive: {kind}",
                    UNEXPECTED_RESPONSE_TYPE)


class DeveloperClient:
    """The room's ``developer`` toolkit: structured logs other participants can watch."""

    def __init__(self, room: RoomClient) -> None:
        self._room = room

    async def log(self, type: str, data: dict[str, Any]) -> None:
        await self._room.invoke("developer", "log", {"type": type, "data": data})
