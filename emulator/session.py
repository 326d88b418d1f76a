"""One participant's room connection: handshake, decoding, dispatch, serialised writes.

Each request runs in its own task, so a pending long-poll never blocks a send on the
same socket. Writes go through one lock, so the packets of two messages never
interleave. Bad input gets an error reply (or, when the framing itself is broken and
no request id can be trusted, a close with a reason); it never ends other sessions.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from localmesh.emulator.calls import Call, Handler
from localmesh.emulator.errors import INVALID_REQUEST, OPERATION_FAILED, PERMISSION_DENIED, RoomError
from localmesh.protocol.sdk_versions import ClientVersion
from localmesh.protocol.tokens import Participant, token_expiry
from localmesh.protocol.wire import (
    Content,
    MessageTooLarge,
    PacketAssembler,
    WireError,
    content_from_header,
    empty_content,
    encode_message,
    error_content,
    json_content,
    pack,
    unpack,
)

logger = logging.getLogger("localmesh.session")

CLOSE_INVALID_DATA = 1007
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_TOO_BIG = 1009
CLOSE_POLICY_VIOLATION = 1008
# request chunks belong to a call already allowed; they carry no request of their own
_CHUNKS = frozenset({"room.tool_call_request_chunk"})
# Message types a client may send that need no answer, or that localmesh does not host.
_FIRE_AND_FORGET = frozenset({"set_attributes"})
_NOT_EMULATED = frozenset({
    "room.register_toolkit", "room.unregister_toolkit", "room.call",
    "room.tool_call_response", "room.tool_call_response_chunk",
})

ToolLookup = Callable[[str, str], Handler | None]


class Session:
    def __init__(
        self,
        websocket: WebSocket,
        *,
        room: str,
        participant: Participant,
        tools: ToolLookup,
        max_message_bytes: int,
        on_close: Callable[[Session], Awaitable[None]] | None = None,
        now: Callable[[], float] = time.time,
        client: ClientVersion | None = None,
    ) -> None:
        self.websocket = websocket
        self.room = room
        self.participant = participant
        self.client = client or ClientVersion.parse(None)
        self.participant_id = uuid.uuid4().hex
        self.session_id = uuid.uuid4().hex
        self.attributes: dict[str, Any] = {"name": participant.name}
        self._tools = tools
        self._assembler = PacketAssembler(max_message_bytes)
        self._write_lock = asyncio.Lock()
        self._next_id = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._streams: dict[str, Call] = {}
        self._on_close = on_close
        self._now = now  # the server's clock: a token that expires mid-connection is refused
        self._expires = token_expiry(participant.claims)
        self.closed = asyncio.Event()

    # ------------------------------------------------------------ writing

    async def _write(self, message_id: int, type: str, data: bytes) -> None:
        frames = encode_message(message_id, type, data)
        async with self._write_lock:
            for frame in frames:
                await self.websocket.send_bytes(frame)

    async def send(self, type: str, header: dict[str, Any], payload: bytes = b"") -> None:
        """A server-originated message (its own id counter)."""
        self._next_id += 1
        await self._write(self._next_id, type, pack(header, payload))

    async def reply(self, message_id: int, content: Content) -> None:
        await self._write(message_id, "__response__", content.pack())

    def describe(self) -> dict[str, Any]:
        return {"id": self.participant_id, "role": self.participant.role, "attributes": self.attributes}

    # ------------------------------------------------------------ lifecycle

    async def run(self, *, room_url: str) -> None:
        await self.websocket.accept()
        try:
            await self.send("room_ready", {
                "room_name": self.room,
                "room_url": room_url,
                "session_id": self.session_id,
            })
            await self.send("connected", {
                "type": "init", "participantId": self.participant_id, "attributes": self.attributes,
            })
            await self._read_loop()
        except (WebSocketDisconnect, ConnectionError):
            pass
        finally:
            await self._shutdown()

    async def _read_loop(self) -> None:
        while True:
            event = await self.websocket.receive()
            if event["type"] == "websocket.disconnect":
                return
            frame = event.get("bytes")
            if frame is None:
                await self.close(CLOSE_UNSUPPORTED_DATA, "localmesh rooms take binary frames only")
                return
            try:
                message = self._assembler.feed(frame)
            except WireError as error:
                logger.warning("room %s: closing %s: %s", self.room, self.participant.name, error)
                code = CLOSE_TOO_BIG if isinstance(error, MessageTooLarge) else CLOSE_INVALID_DATA
                await self.close(code, f"bad frame: {error}"[:120])
                return
            if message is not None:
                await self._dispatch(message.id, message.type, message.data)

    async def close(self, code: int, reason: str) -> None:
        try:
            await self.websocket.close(code, reason)
        except (RuntimeError, ConnectionError):
            pass  # already gone

    async def _shutdown(self) -> None:
        # A closed connection takes nothing: cancel its pending calls (long-polls put back).
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self.closed.set()
        if self._on_close is not None:
            await self._on_close(self)

    # ------------------------------------------------------------ dispatch

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _dispatch(self, message_id: int, type: str, data: bytes) -> None:
        try:
            header, payload = unpack(data)
        except WireError as error:
            await self.reply(message_id, error_content(f"bad {type} message: {error}", INVALID_REQUEST))
            return
        if type not in _CHUNKS and self._expired():
            await self._refuse_expired(message_id)
            return
        if type == "room.invoke_tool":
            self._start_call(message_id, header, payload)
        elif type == "room.tool_call_request_chunk":
            self._route_chunk(header, payload)
            if self.client.awaits_chunk_replies:
                # SDK clients before 0.47.1 wait for this before sending their next chunk, also
                # for the close chunk of a call that has already finished.
                await self.reply(message_id, empty_content())
        elif type == "room.list_toolkits":
            await self.reply(message_id, json_content({"tools": {}}))
        elif type in _FIRE_AND_FORGET:
            self.attributes.update({k: v for k, v in header.items() if k != "name"})
        elif type in _NOT_EMULATED:
            await self.reply(message_id, error_content(
                f"{type} is not supported by localmesh", INVALID_REQUEST))
        else:
            await self.reply(message_id, error_content(
                f"unknown message type {type!r}", INVALID_REQUEST))

    def _expired(self) -> bool:
        return self._expires is not None and self._now() >= self._expires

    async def _refuse_expired(self, message_id: int) -> None:
        # As the upgrade would refuse it: the call gets a clear error, then the connection
        # closes with a close frame, which the SDK takes as final (it would not reconnect with
        # this token anyway: the upgrade answers 403 to an expired one).
        logger.info("room %s: %s's token has expired; closing", self.room, self.participant.name)
        await self.reply(message_id, error_content(
            "the participant token has expired: connect again with a new token", PERMISSION_DENIED))
        await self.close(CLOSE_POLICY_VIOLATION, "token expired")

    def _start_call(self, message_id: int, header: dict[str, Any], payload: bytes) -> None:
        try:
            toolkit, tool = header.get("toolkit"), header.get("tool")
            if not isinstance(toolkit, str) or not isinstance(tool, str):
                raise RoomError(INVALID_REQUEST, "room.invoke_tool needs 'toolkit' and 'tool' strings")
            arguments = content_from_header(header.get("arguments", {"type": "empty"}), payload)
            tool_call_id = str(header.get("tool_call_id") or uuid.uuid4().hex)
        except (RoomError, WireError) as error:
            code = error.code if isinstance(error, RoomError) else INVALID_REQUEST
            self._spawn(self.reply(message_id, error_content(str(error), code)))
            return
        streamed = arguments.type == "control" and arguments.header.get("method") == "open"
        call = Call(
            message_id=message_id, toolkit=toolkit, tool=tool, arguments=arguments,
            tool_call_id=tool_call_id, peer=self, room=self.room,
            inbound=asyncio.Queue() if streamed else None,
        )
        if streamed:
            self._streams[tool_call_id] = call
        self._spawn(self._run_call(call))

    def _route_chunk(self, header: dict[str, Any], payload: bytes) -> None:
        # Chunks for finished or unknown calls are normal (the client closes lazily): drop them.
        call = self._streams.get(str(header.get("tool_call_id")))
        if call is None or call.inbound is None:
            return
        try:
            call.inbound.put_nowait(content_from_header(header.get("chunk"), payload))
        except WireError as error:
            call.inbound.put_nowait(Content({"type": "error", "text": str(error)}))

    async def _run_call(self, call: Call) -> None:
        try:
            error = await self._call(call)
            if error is not None:
                await self._reply_error(call, error)
        except (WebSocketDisconnect, OSError):
            pass  # the connection is gone; the read loop ends the session
        finally:
            self._streams.pop(call.tool_call_id, None)

    async def _call(self, call: Call) -> Content | None:
        """Run the call's handler. Returns the error to answer with, or None once answered."""
        try:
            handler = self._tools(call.toolkit, call.tool)
            if handler is None:
                raise RoomError(
                    INVALID_REQUEST,
                    f"tool {call.tool!r} of toolkit {call.toolkit!r} is not supported by localmesh",
                )
            if not self.participant.api.has(call.toolkit):
                # Each built-in toolkit is an api section of the token (api.queues, api.storage...).
                raise RoomError(
                    PERMISSION_DENIED,
                    f"participant {self.participant.name!r} is not granted the {call.toolkit} API"
                    f" (its token's api grant has no {call.toolkit!r} section)",
                )
            result = await handler(call)
            if result is not None:
                await self.reply(call.message_id, result)
            return None
        except RoomError as error:
            return error_content(error.message, error.code)
        except TimeoutError:  # before OSError, its base class: a stalled stream, not a lost socket
            return error_content(
                f"{call.toolkit}.{call.tool} timed out waiting for the client's stream",
                OPERATION_FAILED)
        except (asyncio.CancelledError, WebSocketDisconnect, OSError):
            raise
        except Exception as error:  # a bug of ours: answer, log, keep the session alive
            logger.exception("room %s: %s.%s failed", self.room, call.toolkit, call.tool)
            return error_content(
                f"localmesh failed to run {call.toolkit}.{call.tool}: {error}", OPERATION_FAILED)

    async def _reply_error(self, call: Call, content: Content) -> None:
        if call.opened:
            await call.send_chunk(content)
        else:
            await self.reply(call.message_id, content)
