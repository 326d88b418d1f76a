"""One websocket session with a room: handshake, requests and chunk streams.

A ``Connection`` never reconnects; ``RoomClient`` replaces it when it drops. Everything
here speaks ``localmesh.protocol.wire``: frames in, ``(id, type, data)`` messages, envelopes, contents.

The cost per message is the client's cost per queue operation, so both directions are lean:

- reading: there is no reader task. ``LeanClientConnection`` (lean_websocket.py) parses data
  frames as the socket delivers them and hands each one to the packet assembler (codec.py),
  which hands each whole message to ``_on_message``: the request's future is resolved in the
  same call (one loop turn from the socket to the waiting caller);
- writing: a request is written synchronously, all its frames in one ``write`` (never half a
  message, whatever happens to the caller afterwards); only when the socket is paused (its
  buffer over the high-water mark) does a writer wait, before writing, until it drains. The
  messages of one loop turn after the first go out together at its end (one system call for a
  pipelined burst).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sized
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus, WebSocketException
from websockets.protocol import State

from localmesh.protocol.error_codes import UNEXPECTED_RESPONSE_TYPE
from localmesh.protocol.loop_turn import ready_queue
from localmesh.protocol.wire import (
    LARGE_PACKET_SIZE,
    PACKET_DATA_SIZE,
    PACKET_SIZE_HEADER,
    Content,
    WireError,
    agreed_packet_size,
    content_from_header,
    pack,
    unpack,
)
from localmesh.worker.codec import MessageAssembler, unpack_reply
from localmesh.worker.errors import ConnectionLost, RoomClosed, RoomError
from localmesh.worker.frames import masked_message
from localmesh.worker.lean_websocket import LeanClientConnection

logger = logging.getLogger("localmesh.worker.connection")

EventHandler = Callable[[str, dict[str, Any], bytes], None]
OrphanHandler = Callable[[Content], None]
# A request waiting for its reply: the future, and the handler of a reply that comes after
# the caller gave up (cancelled), so that a reply carrying data (a queue message) is not
# silently dropped.
_Pending = tuple[asyncio.Future[Content], OrphanHandler | None]
_OPEN = State.OPEN
# Bytes of a turn's messages held before they are written anyway. Small, so that the server
# starts on a pipelined burst's head while this side still encodes its tail (64 queue sends:
# +8 % pairs/s against 256 KiB, docs/benchmarks.md), and a writer that never yields still fills
# the socket and meets backpressure.
TURN_BUFFER_MAX = 8 * 1024


class HandshakeRefused(RoomClosed):
    """The server refused the websocket upgrade with an HTTP status (e.g. 403 for a bad token)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class SessionInfo:
    """What the server said about us in ``room_ready`` and ``connected``."""

    room_name: str = ""
    room_url: str = ""
    session_id: str = ""
    participant_id: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)


class ChunkStream:
    """The server's ``room.tool_call_response_chunk`` contents for one tool call, in order."""

    def __init__(self, tool_call_id: str) -> None:
        self.tool_call_id = tool_call_id
        self._items: asyncio.Queue[Content | RoomError] = asyncio.Queue()

    def _put(self, item: Content | RoomError) -> None:
        self._items.put_nowait(item)

    async def next(self) -> Content:
        item = await self._items.get()
        if isinstance(item, RoomError):
            raise item
        return item


class Connection:
    """A connected, ready room websocket. Build one with ``await Connection.open(...)``."""

    def __init__(self, ws: LeanClientConnection, *, on_event: EventHandler | None = None) -> None:
        self._ws = ws
        self._on_event = on_event
        self._assembler = MessageAssembler(self._on_message, self._on_bad_packet)
        self.packet_size = PACKET_DATA_SIZE  # data bytes per packet this side sends
        self._turn_buffer: list[bytes] | None = None  # messages waiting for the turn's end
        self._turn_bytes = 0  # ... and their size
        self._next_id = 0
        self._pending: dict[int, _Pending] = {}
        self._streams: dict[str, ChunkStream] = {}
        self._got_room_ready = False
        self._got_connected = False
        self._ready = asyncio.Event()
        self._closing = False  # we asked to close
        self._finished = False  # the websocket is closed (``closed`` is set)
        self.session = SessionInfo()
        self.closed = asyncio.Event()
        self.dropped = False  # closed without a close frame from the server
        self.close_reason = ""
        self._loop = asyncio.get_running_loop()
        # The callbacks the loop runs in this turn (empty: none but this one); on a loop that
        # does not show them (uvloop), never empty: each write schedules the end of its turn.
        self._ready_queue: Sized = ready_queue(self._loop)
        # Messages that came with the handshake are handed over at once, in order.
        ws.attach(self._assembler.feed, self._finish)

    # ------------------------------------------------------------ opening and closing

    @classmethod
    async def open(
        cls,
        url: str,
        token: str,
        *,
        timeout: float = 10.0,
        on_event: EventHandler | None = None,
    ) -> Connection:
        """Connect to the room websocket ``url`` and wait for ``room_ready`` and ``connected``.

        Raises ``HandshakeRefused`` for an HTTP refusal, ``ConnectionLost`` for anything
        that may succeed on a retry (connection refused, closed before ready, timeout).
        """
        try:
            ws = await connect(
                url,
                additional_headers={
                    "Authorization": f"Bearer {token}",
                    # localmesh then sends big packets; other servers ignore the header.
                    PACKET_SIZE_HEADER: str(LARGE_PACKET_SIZE),
                },
                create_connection=LeanClientConnection,
                # Room messages are small binary packets: not worth compressing, and an
                # extension would keep every frame on websockets' slower path.
                compression=None,
                max_size=None,
                open_timeout=timeout,
                # Pings keep a silent long-poll from looking dead to proxies and detect
                # a half-open TCP connection; the server answers them automatically.
                ping_interval=20,
                ping_timeout=20,
            )
        except InvalidStatus as error:
            status = error.response.status_code
            # localmesh says why in a header; other servers may not.
            reason = error.response.headers.get("x-localmesh-reason")
            detail = f": {reason}" if reason else ""
            raise HandshakeRefused(
                f"the room refused the connection with HTTP {status}{detail}", status
            ) from None
        except (OSError, TimeoutError, WebSocketException) as error:
            raise ConnectionLost(f"could not connect to {url}: {error}") from None
        assert isinstance(ws, LeanClientConnection)
        connection = cls(ws, on_event=on_event)
        # Big packets only to a server that says it takes them (localmesh does).
        connection.packet_size = agreed_packet_size(ws.response.headers.get(PACKET_SIZE_HEADER))
        if not connection._ready.is_set():
            ready = asyncio.create_task(connection._ready.wait())
            closed = asyncio.create_task(connection.closed.wait())
            try:
                await asyncio.wait(
                    {ready, closed}, timeout=timeout, return_when="FIRST_COMPLETED")
            finally:
                ready.cancel()
                closed.cancel()
        if not connection._ready.is_set():
            reason = connection.close_reason or f"no room_ready/connected within {timeout} s"
            await connection.close()
            raise ConnectionLost(f"room connection closed before it became ready: {reason}")
        return connection

    async def close(self) -> None:
        self._closing = True
        self._write_turn()  # what this turn wrote goes before the close frame
        with contextlib.suppress(Exception):
            await self._ws.close()
        if not self._finished:  # close() returns once the TCP connection is gone
            await self.closed.wait()

    @property
    def is_open(self) -> bool:
        return not self._finished

    # ------------------------------------------------------------ writing

    def _write_now(self, type: str, data: bytes, pending: _Pending | None) -> int:
        """Write one message at once; its id. Nothing here awaits, so a message is whole on
        the socket (all its frames in one write) or not there at all."""
        ws = self._ws
        if self._finished or ws.protocol.state is not _OPEN or ws.transport.is_closing():
            raise self._closed_error()
        self._next_id = message_id = self._next_id + 1
        if pending is not None:
            # Registered before the frames go out: the reply may be read at once.
            self._pending[message_id] = pending
        self._send_now_or_soon(masked_message(message_id, type, data, self.packet_size))
        return message_id

    async def _until_writable(self) -> None:
        """Backpressure: wait while the socket's buffer is over its high-water mark. Writers
        waiting here resume in the order they came (websockets' drain waiters are FIFO)."""
        ws = self._ws
        while ws.paused and not self._finished:
            try:
                await ws.drain()
            except ConnectionError:
                return  # the connection is ending: the write that follows says so

    def _send_now_or_soon(self, data: bytes) -> None:
        """The first message of a loop turn goes out at once (no added latency); the ones
        after it in the same turn (a pipelined burst) go together in one write at its end,
        or as soon as they add up to ``TURN_BUFFER_MAX`` bytes (the server works on those
        while the rest are encoded).

        A turn can only have more writers if other callbacks are queued to run in it: with
        none (a sequential caller, the usual case), no end-of-turn callback is scheduled, which
        saves a pass of the event loop (and its ``epoll_wait``) per message."""
        buffer = self._turn_buffer
        if buffer is not None:
            buffer.append(data)
            self._turn_bytes += len(data)
            if self._turn_bytes >= TURN_BUFFER_MAX:
                self._write_turn()
            return
        self._ws.transport.write(data)
        if self._ready_queue:
            self._turn_buffer = []
            self._turn_bytes = 0
            self._loop.call_soon(self._end_turn)

    def _write_turn(self) -> None:
        """Write what this turn has buffered (never after a close frame: once closing, what
        is left fails with the connection)."""
        buffered = self._turn_buffer
        if not buffered:
            return
        self._turn_buffer, self._turn_bytes = [], 0
        if self._ws.protocol.state is _OPEN and not self._ws.transport.is_closing():
            self._ws.transport.write(b"".join(buffered))

    def _end_turn(self) -> None:
        self._write_turn()
        self._turn_buffer = None

    async def send(self, type: str, header: dict[str, Any], payload: bytes = b"") -> None:
        """Send a message that gets no reply (request chunks, ``set_attributes``)."""
        if self._ws.paused:
            await self._until_writable()
        self._write_now(type, pack(header, payload), None)

    async def send_request(
        self,
        type: str,
        header: dict[str, Any],
        payload: bytes = b"",
        *,
        on_orphan: OrphanHandler | None = None,
    ) -> asyncio.Future[Content]:
        """Send a request and return the future of its ``__response__`` content.

        Returning after the write (not after the reply) lets streamed calls send their
        request chunks straight after the request, as the protocol expects.
        """
        if self._ws.paused:
            await self._until_writable()
        future: asyncio.Future[Content] = self._loop.create_future()
        self._write_now(type, pack(header, payload), (future, on_orphan))
        return future

    async def request(
        self,
        type: str,
        header: dict[str, Any],
        payload: bytes = b"",
        *,
        on_orphan: OrphanHandler | None = None,
    ) -> Content:
        """Send a request and wait for its reply; an ``error`` reply raises ``RoomError``."""
        if self._ws.paused:
            await self._until_writable()  # cancelled here: nothing was sent
        future: asyncio.Future[Content] = self._loop.create_future()
        pending = (future, on_orphan)
        self._write_now(type, pack(header, payload), pending)
        try:
            content = await future
        except asyncio.CancelledError:
            # Cancelled after the reply was read but before we woke up to it: the reply
            # (a queue message, say) goes to the orphan handler instead of vanishing.
            _abandon(pending)
            raise
        if content.header["type"] == "error":  # (the header, not the property: a call less)
            raise_for_error(content)
        return content

    def open_stream(self, tool_call_id: str) -> ChunkStream:
        stream = ChunkStream(tool_call_id)
        if self._finished:
            stream._put(self._closed_error())
        self._streams[tool_call_id] = stream
        return stream

    def close_stream(self, tool_call_id: str) -> None:
        self._streams.pop(tool_call_id, None)

    # ------------------------------------------------------------ reading

    # Each binary websocket message (a packet) goes to the assembler as the socket delivers
    # it; the assembler hands each whole message here, in the same call.

    def _on_bad_packet(self, error: WireError) -> None:
        logger.warning("dropping a malformed message: %s", error)

    def _on_message(self, message_id: int, type: str, data: bytes) -> None:
        try:
            if type == "__response__":
                self._resolve(message_id, data)
            else:
                self._dispatch(type, data)
        except Exception:  # a bug here must not leave requests hanging
            logger.exception("room connection reader failed")
            self._ws.transport.abort()  # the connection ends: what is pending fails

    def _finish(self) -> None:
        """The websocket is closed (called once, by the websocket connection)."""
        if self._finished:
            return
        self._finished = True
        protocol = self._ws.protocol
        close = protocol.close_rcvd
        failure = self._ws.protocol_error
        self.dropped = close is None and not self._closing
        if self._closing:
            self.close_reason = "closed by the client"
        elif close is not None:
            self.close_reason = f"the server closed the connection (code {close.code})"
        elif failure is not None:
            self.close_reason = (
                f"the server broke the websocket protocol: {failure[1]} (closed with code "
                f"{failure[0]})")
        else:
            self.close_reason = "the connection dropped"
        self._turn_buffer = None
        self.closed.set()
        error = self._closed_error()
        for future, _ in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()
        for stream in self._streams.values():
            stream._put(error)

    def _closed_error(self) -> RoomError:
        reason = self.close_reason or "the connection is closed"
        if self.dropped or not self._finished:
            return ConnectionLost(f"room connection lost before the request completed: {reason}")
        return RoomClosed(f"room connection closed before the request completed: {reason}")

    def _dispatch(self, type: str, data: bytes) -> None:
        """A message that is not a reply: a chunk, the handshake's, or an event."""
        try:
            header, payload = unpack(data)
        except WireError as error:
            logger.warning("dropping %s with a bad envelope: %s", type, error)
            return
        if type == "room.tool_call_response_chunk":
            self._route_chunk(header, payload)
        elif type == "room_ready":
            self.session.room_name = str(header.get("room_name", ""))
            self.session.room_url = str(header.get("room_url", ""))
            self.session.session_id = str(header.get("session_id", ""))
            self._got_room_ready = True
        elif type == "connected":
            if header.get("type") == "init":
                self.session.participant_id = str(header.get("participantId", ""))
                self.session.attributes = dict(header.get("attributes") or {})
                self._got_connected = True
        elif self._on_event is not None:
            self._on_event(type, header, payload)
        if self._got_room_ready and self._got_connected:
            self._ready.set()

    def _resolve(self, message_id: int, data: bytes) -> None:
        pending = self._pending.pop(message_id, None)
        if pending is None:
            logger.debug("ignoring a reply to unknown request %d", message_id)
            return
        try:
            content = unpack_reply(data)
        except WireError as error:
            content = Content(
                {"type": "error", "text": f"malformed reply: {error}",
                 "code": UNEXPECTED_RESPONSE_TYPE}
            )
        future = pending[0]
        if not future.done():
            future.set_result(content)
        elif future.cancelled():
            _hand_to_orphan_handler(pending, content)

    def _route_chunk(self, header: dict[str, Any], payload: bytes) -> None:
        stream = self._streams.get(str(header.get("tool_call_id")))
        if stream is None:
            return  # a chunk for a call we finished or never made
        try:
            stream._put(content_from_header(header.get("chunk"), payload))
        except WireError as error:
            stream._put(RoomError(f"malformed chunk: {error}", UNEXPECTED_RESPONSE_TYPE))


def _abandon(pending: _Pending) -> None:
    """The caller stopped waiting: hand a reply that already came to the orphan handler."""
    future = pending[0]
    if not future.done():
        future.cancel()  # _resolve passes the reply to on_orphan when it arrives
    elif not future.cancelled() and future.exception() is None:
        _hand_to_orphan_handler(pending, future.result())


def _hand_to_orphan_handler(pending: _Pending, content: Content) -> None:
    # Runs as the reply is read: a failing handler must not end the connection.
    on_orphan = pending[1]
    if on_orphan is None:
        return
    try:
        on_orphan(content)
    except Exception:
        logger.exception("the handler of a reply nobody waited for failed")


def raise_for_error(content: Content) -> Content:
    if content.type == "error":
        code = content.header.get("code")
        raise RoomError(
            str(content.header.get("text", "")), code if isinstance(code, int) else None
        )
    return content
