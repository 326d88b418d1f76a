"""One participant's room connection: handshake, decoding, dispatch, bounded writes.

Messages come to ``_take`` as the websocket protocol parses them (no task wake-up per
message). A call runs in its own task, so a pending long-poll never blocks a send on the
same socket, unless it can be answered at once (``_run_now``: a queue send, a receive that
finds a message); a connection has a bounded number of requests in flight (``inflight.py``).
Every write goes through the connection's outbox (``outbox.py``), so the packets of two
messages never interleave and a client that stops reading is cut off, never waited on.
Bad input gets an error reply (or, when the framing itself is broken and no request id
can be trusted, a close with a reason); it never ends other sessions.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from localmesh.emulator.calls import Call, Handler, Immediate, NowHandler
from localmesh.emulator.errors import INVALID_REQUEST, OPERATION_FAILED, PERMISSION_DENIED, RoomError
from localmesh.emulator.inflight import InFlight, Slot, TooManyWaiting
from localmesh.emulator.limits import Limits
from localmesh.emulator.namespaces import room_name as name_of_room
from localmesh.emulator.outbox import Outbox, OutboxClosed
from localmesh.emulator.timeline import Timeline, bounded_arguments
from localmesh.protocol.sdk_versions import ClientVersion
from localmesh.protocol.tokens import Participant, token_expiry
from localmesh.protocol.wire import (
    PACKET_DATA_SIZE,
    Content,
    InboundBudget,
    Message,
    PacketAssembler,
    Rejected,
    WireError,
    content_from_header,
    empty_content,
    encode_message,
    error_content,
    json_content,
    pack,
    unpack,
)

if TYPE_CHECKING:
    from localmesh.emulator.frames import FrameBudget
    from localmesh.emulator.websocket import ReadObserver

logger = logging.getLogger("localmesh.session")

MESSAGES_PER_TURN = 16  # requests a connection's reader handles before it yields the loop
CLOSE_INVALID_DATA = 1007
CLOSE_UNSUPPORTED_DATA = 1003
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
NowLookup = Callable[[str, str], NowHandler | None]
# Calls ``callback(*args)`` once a commit future is done (the store's ``after_commit``: at once).
AfterCommit = Callable[..., None]
Abort = Callable[[], None]  # cut the TCP connection at once, with no close handshake
_CLOSE_REASONS = {
    1000: "closed by the client", 1001: "the client went away",
    1005: "connection lost (no close frame)", 1006: "connection lost (no close frame)",
    1012: "the server is restarting",
}


def _close_reason(code: int | None) -> str:
    if code is None:
        return "connection lost"
    return _CLOSE_REASONS.get(code, f"closed with code {code}")


def _after_future(committed: asyncio.Future[None], callback: Callable[..., None], *args: Any) -> None:
    """``AfterCommit`` without a store: through the future's own callback (a pass later)."""
    committed.add_done_callback(lambda _: callback(*args))


def _payload_of(event: dict[str, Any]) -> tuple[bytes, bool]:
    """A data message's bytes and whether it was text (its bytes then do not matter)."""
    frame = event.get("bytes")
    return (b"", True) if frame is None else (frame, False)


class _Cut(bytes):
    """A place in the outbox where a drop fault cuts the connection: the frames queued before
    it are written (the peer gets them), nothing after. ``budgets`` are the ones it spends."""

    budgets: list[FrameBudget]


class Session:
    def __init__(
        self,
        websocket: WebSocket,
        *,
        room: str,
        participant: Participant,
        tools: ToolLookup,
        limits: Limits | None = None,
        budget: InboundBudget | None = None,
        abort: Abort | None = None,
        on_close: Callable[[Session], Awaitable[None]] | None = None,
        now: Callable[[], float] = time.time,
        client: ClientVersion | None = None,
        frame_budget: FrameBudget | None = None,
        hang_up: Abort | None = None,
        packet_size: int = PACKET_DATA_SIZE,
        accept_headers: list[tuple[bytes, bytes]] | None = None,
        timeline: Timeline | None = None,
        tools_now: NowLookup | None = None,
        after_commit: AfterCommit | None = None,
        reads: ReadObserver | None = None,
    ) -> None:
        limits = limits or Limits()
        self.websocket = websocket
        self.room = room  # the room key (see emulator.namespaces); clients see room_name
        self.room_name = name_of_room(room)
        self._timeline = timeline
        self._close_reason: str | None = None
        self.participant = participant
        self.client = client or ClientVersion.parse(None)
        self.participant_id = uuid.uuid4().hex
        self.session_id = uuid.uuid4().hex
        self.attributes: dict[str, Any] = {"name": participant.name}
        self._tools = tools
        self._tools_now = tools_now  # calls answered without a task, when they can be
        self._after_commit = after_commit or _after_future  # how such a call waits for its commit
        self._reads = reads  # told as each socket read starts and ends (the store commits then)
        self._assembler = PacketAssembler(
            limits.max_message_bytes, max_packet_bytes=limits.max_packet_bytes, budget=budget
        )
        # Our websocket protocol writes many frames in one write (``websocket.py``); any other
        # (an ASGI test client) takes them one by one.
        self._socket_send_frames = getattr(websocket, "send_frames", None) or self._send_each
        self._socket_write_frames = getattr(websocket, "write_frames", None)
        self._cuts_queued = 0  # cut markers (drop faults) put in the outbox so far
        self._outbox = Outbox(
            self._send_frames, max_bytes=limits.outbox_bytes,
            write_now=self._write_at_once if self._socket_write_frames else None,
            write_timeout=limits.write_timeout, on_stalled=self._stalled,
        )
        self._inflight = InFlight(limits.max_active_calls, limits.max_waiting_calls)
        self._inflight.on_free = self._slot_freed
        # Reading, message by message (``_take``): what stops it until ``_go_on``.
        self._set_sink = getattr(websocket, "set_sink", None)
        self._resume_sink = getattr(websocket, "resume_sink", None)
        self._backlog: deque[tuple[bytes, bool]] = deque()  # taken, not handled yet
        self._held: Message | None = None  # a call waiting for a free slot
        self._blocking: asyncio.Task[None] | None = None  # a reply waiting for outbox room
        self._done_reading = False  # closing: nothing more is handled
        self._handled = 0  # messages handled since reading last let others run
        self._go_on_scheduled = False
        self._unblocked = asyncio.Event()  # reading may go on (the ASGI-event path)
        self._abort = abort
        self._frame_budget = frame_budget  # a drop_connection fault's, if one is aimed here
        # Closes the TCP connection once what was written is flushed, with no close frame:
        # a drop fault's cut, which the peer sees as a lost connection.
        self._hang_up = hang_up
        self._next_id = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._streams: dict[str, Call] = {}
        self._on_close = on_close
        self._now = now  # the server's clock: a token that expires mid-connection is refused
        self._expires = token_expiry(participant.claims)
        self._reader: asyncio.Task[None] | None = None
        self._packet_size = packet_size  # what the client said it takes (1024: the SDK)
        self._accept_headers = accept_headers or []
        self.closed = asyncio.Event()

    # ------------------------------------------------------------ writing

    async def _send_frames(self, frames: list[bytes]) -> None:
        """Write the outbox's frames in order, in one write when the websocket can. A cut
        marker among them (a drop fault) ends the connection after the frames before it."""
        if self._cuts_queued:
            for index, frame in enumerate(frames):
                if isinstance(frame, _Cut):
                    if index:
                        await self._socket_send_frames(frames[:index])
                    self._cut_here(frame)
                    raise ConnectionResetError("localmesh: connection cut by an injected fault")
        await self._socket_send_frames(frames)

    def _write_at_once(self, frames: list[bytes]) -> bool:
        # A cut marker may be among them: the outbox's writer handles those, in order.
        return not self._cuts_queued and self._socket_write_frames(frames)

    async def _send_each(self, frames: list[bytes]) -> None:
        # A websocket without ``send_frames`` (not on our protocol): a frame per send.
        for frame in frames:
            await self.websocket.send_bytes(frame)

    async def _write(
        self, message_id: int, type: str, data: bytes, budget: FrameBudget | None = None
    ) -> None:
        frames, whole = self._within_budgets(
            encode_message(message_id, type, data, self._packet_size), budget)
        await self._outbox.put(frames)
        if not whole:
            raise ConnectionResetError("localmesh: connection cut by an injected fault")

    def _within_budgets(
        self, frames: list[bytes], budget: FrameBudget | None = None
    ) -> tuple[list[bytes], bool]:
        """The frames to queue under the drop faults' budgets, and whether they are all of the
        message. The frames are written in the order they are queued, so counting here counts
        what the peer will get; a cut marker follows the last frame a budget allows."""
        budgets = [b for b in (self._frame_budget, budget) if b is not None]
        if not budgets:
            return frames, True
        if any(b.cut for b in budgets):
            raise ConnectionResetError("localmesh: connection cut by an injected fault")
        allowed = min(min(b.left for b in budgets), len(frames))
        for b in budgets:
            b.left -= allowed
        spent = [b for b in budgets if b.exhausted()]
        if not spent:
            return frames, True
        marker = _Cut()
        marker.budgets = spent
        self._cuts_queued += 1
        for b in spent:
            b.cut = True
        return [*frames[:allowed], marker], allowed == len(frames)

    def _cut_here(self, marker: _Cut) -> None:
        for budget in marker.budgets:
            budget.fire()
        if self._hang_up is not None:
            self._hang_up()
        elif self._abort is not None:
            self._abort()
        else:  # no transport to reach (an ASGI test client): end the socket the only way left
            self._spawn(self.websocket.close(1011, "localmesh: connection cut by an injected fault"))

    async def send(
        self, type: str, header: dict[str, Any], payload: bytes = b"",
        *, budget: FrameBudget | None = None,
    ) -> None:
        """A server-originated message (its own id counter), waiting for room to queue it."""
        self._next_id += 1
        await self._write(self._next_id, type, pack(header, payload), budget)

    def notify(self, type: str, header: dict[str, Any]) -> bool:
        """A room event: queued without waiting. A client too far behind is cut off
        (the event is then not delivered). Returns whether it was queued."""
        self._next_id += 1
        try:
            frames, whole = self._within_budgets(
                encode_message(self._next_id, type, pack(header), self._packet_size))
            self._outbox.put_nowait(frames)
        except (OutboxClosed, ConnectionResetError):
            return False
        return whole

    async def reply(
        self, message_id: int, content: Content, *, budget: FrameBudget | None = None
    ) -> None:
        await self._write(message_id, "__response__", content.pack(), budget)

    def reply_now(self, message_id: int, content: Content) -> bool:
        """Queue a reply without waiting if it can be now (no drop fault counts this
        connection's frames, the outbox has room, it is open); False leaves it to ``reply``."""
        if self._frame_budget is not None:
            return False
        frames = encode_message(message_id, "__response__", content.pack(), self._packet_size)
        try:
            return self._outbox.put_now(frames)
        except OutboxClosed:
            return False

    def _stalled(self, reason: str) -> None:
        self._close_reason = self._close_reason or f"cut off by localmesh: {reason}"
        logger.warning("room %s: dropping stuck participant %s: %s", self.room, self.participant.name, reason)
        self._cut()

    def _cut(self) -> None:
        """End the connection now: no close handshake with a client that does not read."""
        if self._abort is not None:
            self._abort()
        if self._reader is not None:
            self._reader.cancel()

    def describe(self) -> dict[str, Any]:
        return {"id": self.participant_id, "role": self.participant.role, "attributes": self.attributes}

    # ------------------------------------------------------------ lifecycle

    async def run(self, *, room_url: str) -> None:
        await self.websocket.accept(headers=self._accept_headers)
        self._outbox.start()
        self._reader = asyncio.current_task()
        try:
            self._record("connect", "", detail=f"as {self.participant.role}")
            await self.send("room_ready", {
                "room_name": self.room_name,
                "room_url": room_url,
                "session_id": self.session_id,
            })
            await self.send("connected", {
                "type": "init", "participantId": self.participant_id, "attributes": self.attributes,
            })
            await self._read_loop()
        except WebSocketDisconnect as error:
            self._close_reason = self._close_reason or _close_reason(error.code)
        except ConnectionError:
            self._close_reason = self._close_reason or _close_reason(None)
        except asyncio.CancelledError:
            pass  # cut off (the reason is logged where it was)
        finally:
            await self._shutdown()
            self._record("disconnect", "", detail=self._close_reason or "closed")

    def _record(self, kind: str, subject: str, code: int | None = None,
                duration: float | None = None, detail: object = None) -> None:
        if self._timeline is not None:
            self._timeline.record(self.room, kind, self.participant.name, subject, code, duration, detail)

    async def _read_loop(self) -> None:
        """Read until the connection ends. On our websocket protocol, messages come to
        ``_take`` as they are parsed (no task wake-up per message) and this loop only waits
        for the end; on any other websocket each message comes here as an ASGI event."""
        if self._set_sink is not None:
            earlier = self._set_sink(self._take, self._reads)
            self._backlog.extend(_payload_of(event) for event in earlier)
            self._go_on()
        while True:
            event = await self.websocket.receive()
            if event["type"] == "websocket.disconnect":
                self._close_reason = self._close_reason or _close_reason(event.get("code"))
                return
            if not self._take(*_payload_of(event)):
                self._unblocked.clear()
                await self._unblocked.wait()

    # ------------------------------------------------------------ reading, message by message

    def _take(self, frame: bytes, text: bool) -> bool:
        """One data message from the client. False: read no more until ``_go_on`` (a call
        waits for a slot, a reply for room in the outbox, or others get a turn)."""
        if self._done_reading:
            return False
        if self._backlog or self._held is not None or self._blocking is not None:
            self._backlog.append((frame, text))  # behind what waits already, in order
            return False
        return self._handle_guarded(frame, text)

    def _handle_guarded(self, frame: bytes, text: bool) -> bool:
        """``_handle``, where a bug of ours ends this connection (the server goes on)."""
        try:
            return self._handle(frame, text)
        except Exception:
            logger.exception("room %s: failed to handle a message from %s", self.room,
                             self.participant.name)
            self._end_with_close(1011, "localmesh failed to handle a message")
            return False

    def _handle(self, frame: bytes, text: bool) -> bool:
        if text:
            self._end_with_close(CLOSE_UNSUPPORTED_DATA, "localmesh rooms take binary frames only")
            return False
        try:
            message = self._assembler.feed(frame)
        except WireError as error:
            logger.warning("room %s: closing %s: %s", self.room, self.participant.name, error)
            self._end_with_close(CLOSE_INVALID_DATA, f"bad frame: {error}"[:120])
            return False
        if isinstance(message, Rejected):
            # Over a limit: answered at once; the rest of its packets are skipped.
            logger.info("room %s: refused a %s from %s: %s",
                        self.room, message.type, self.participant.name, message.reason)
            self._answer(message.id, error_content(
                f"{message.type or 'message'} refused: {message.reason}", INVALID_REQUEST))
        elif message is not None:
            if not self._dispatch(message):
                self._held = message
                return False
            # A few messages per turn of the event loop: a pipelined burst shares one
            # commit and one write, and a client pipelining thousands of requests still
            # gets no longer turns than anyone else's.
            self._handled += 1
            if self._handled >= MESSAGES_PER_TURN:
                self._handled = 0
                self._schedule_go_on()
                return False
        return self._blocking is None and not self._done_reading

    def _slot_freed(self) -> None:
        if self._held is not None:
            self._schedule_go_on()

    def _schedule_go_on(self) -> None:
        if not self._go_on_scheduled:
            self._go_on_scheduled = True
            asyncio.get_running_loop().call_soon(self._go_on)

    def _go_on(self) -> None:
        """Handle what waited, then read on, unless something stops reading again."""
        self._go_on_scheduled = False
        if self._done_reading or self._blocking is not None:
            return  # ended, or the reply's task calls this again when it is written
        if self._held is not None:
            if not self._dispatch(self._held):
                return  # still no free slot: a freed one calls this again
            self._held = None
        while self._backlog:
            if not self._handle_guarded(*self._backlog.popleft()):
                return
        if self._resume_sink is not None:
            self._resume_sink()
        self._unblocked.set()

    def _answer(self, message_id: int, content: Content) -> None:
        """Reply from the reading path; while the reply waits for room in the outbox (the
        client reads slowly), nothing more is read from it."""
        task = self._spawn(self.reply(message_id, content))
        if task is not None:
            self._blocking = task

    def _end_with_close(self, code: int, reason: str) -> None:
        """Read no more; close with a reason, then end the session."""
        self._done_reading = True
        self._spawn(self._close_and_end(code, reason))

    async def _close_and_end(self, code: int, reason: str) -> None:
        await self.close(code, reason)
        if self._reader is not None:
            self._reader.cancel()  # the read loop may still wait for the peer's close

    async def close(self, code: int, reason: str) -> None:
        """Close with a reason once what is queued is written; cut off a client that does not read."""
        self._close_reason = self._close_reason or f"closed by localmesh ({code}: {reason})"
        await self._outbox.flush(self._outbox.write_timeout)
        try:
            async with asyncio.timeout(self._outbox.write_timeout):
                await self.websocket.close(code, reason)
        except TimeoutError:
            self._cut()
        except (RuntimeError, ConnectionError, WebSocketDisconnect):
            pass  # already gone

    async def _shutdown(self) -> None:
        # A closed connection takes nothing: cancel its pending calls (long-polls put back).
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._outbox.aclose()
        self._assembler.close()
        self.closed.set()
        if self._on_close is not None:
            await self._on_close(self)

    # ------------------------------------------------------------ dispatch

    def _spawn(
        self, coroutine: Coroutine[Any, Any, None], slot: Slot | None = None
    ) -> asyncio.Task[None] | None:
        """Start a task at once (eagerly): a call runs up to its first real wait right here,
        in arrival order, instead of one turn of the event loop later. Returns it if it
        waits, None if it ran to its end right here."""
        task = asyncio.Task(self._tracked(coroutine, slot), loop=asyncio.get_running_loop(),
                            eager_start=True)
        if task.done():
            return None
        self._tasks.add(task)
        return task

    async def _tracked(self, coroutine: Coroutine[Any, Any, None], slot: Slot | None) -> None:
        # Bookkeeping as the task ends, in the task itself: a done-callback would cost the
        # event loop one more handle per call.
        try:
            await coroutine
        finally:
            task = asyncio.current_task()
            self._tasks.discard(task)  # type: ignore[arg-type]
            if slot is not None:
                slot.release()
            if task is self._blocking:
                self._blocking = None
                self._schedule_go_on()

    def _dispatch(self, message: Message) -> bool:
        """Start handling a whole message; False (nothing done) when it is a call and the
        connection has no free slot: its backlog then stays in its own socket."""
        message_id, type, data = message.id, message.type, message.data
        try:
            header, payload = unpack(data)
        except WireError as error:
            self._answer(message_id, error_content(f"bad {type} message: {error}", INVALID_REQUEST))
            return True
        if type not in _CHUNKS and self._expired():
            self._refuse_expired(message_id)
            return True
        if type == "room.invoke_tool":
            slot = self._inflight.try_acquire()
            if slot is None:
                return False
            self._start_call(message_id, header, payload, slot, len(data))
        elif type == "room.tool_call_request_chunk":
            self._route_chunk(header, payload)
            if self.client.awaits_chunk_replies:
                # SDK clients before 0.47.1 wait for this before sending their next chunk, also
                # for the close chunk of a call that has already finished.
                self._answer(message_id, empty_content())
        elif type == "room.list_toolkits":
            self._answer(message_id, json_content({"tools": {}}))
        elif type in _FIRE_AND_FORGET:
            self.attributes.update({k: v for k, v in header.items() if k != "name"})
        elif type in _NOT_EMULATED:
            self._answer(message_id, error_content(
                f"{type} is not supported by localmesh", INVALID_REQUEST))
        else:
            self._answer(message_id, error_content(
                f"unknown message type {type!r}", INVALID_REQUEST))
        return True

    def _expired(self) -> bool:
        return self._expires is not None and self._now() >= self._expires

    def _refuse_expired(self, message_id: int) -> None:
        # As the upgrade would refuse it: the call gets a clear error, then the connection
        # closes with a close frame, which the SDK takes as final (it would not reconnect with
        # this token anyway: the upgrade answers 403 to an expired one).
        logger.info("room %s: %s's token has expired; closing", self.room, self.participant.name)
        self._done_reading = True
        self._spawn(self._refuse_and_end(message_id))

    async def _refuse_and_end(self, message_id: int) -> None:
        await self.reply(message_id, error_content(
            "the participant token has expired: connect again with a new token", PERMISSION_DENIED))
        await self._close_and_end(CLOSE_POLICY_VIOLATION, "token expired")

    def _start_call(self, message_id: int, header: dict[str, Any], payload: bytes, slot: Slot,
                    size: int) -> None:
        try:
            toolkit, tool = header.get("toolkit"), header.get("tool")
            if not isinstance(toolkit, str) or not isinstance(tool, str):
                raise RoomError(INVALID_REQUEST, "room.invoke_tool needs 'toolkit' and 'tool' strings")
            arguments = content_from_header(header.get("arguments", {"type": "empty"}), payload)
            tool_call_id = str(header.get("tool_call_id") or uuid.uuid4().hex)
        except (RoomError, WireError) as error:
            code = error.code if isinstance(error, RoomError) else INVALID_REQUEST
            self._spawn(self.reply(message_id, error_content(str(error), code)), slot)
            return
        streamed = arguments.header["type"] == "control" and arguments.header.get("method") == "open"
        if streamed:
            # A stream waits on chunks this very loop must go on reading: holding an active
            # slot, 32 concurrent uploads would stop the reads their own chunks need.
            try:
                slot.detach()
            except TooManyWaiting as error:
                self._spawn(self.reply(message_id, error_content(
                    f"{toolkit}.{tool} refused: {error}", OPERATION_FAILED)), slot)
                return
        call = Call(
            message_id=message_id, toolkit=toolkit, tool=tool, arguments=arguments,
            tool_call_id=tool_call_id, peer=self, room=self.room,
            inbound=asyncio.Queue() if streamed else None, slot=slot, request_bytes=size,
        )
        if streamed:
            self._streams[tool_call_id] = call
        elif self._tools_now is not None and self._frame_budget is None:
            now = self._tools_now(toolkit, tool)
            if now is not None and self.participant.api.has(toolkit) and self._run_now(call, now, slot):
                return
        self._spawn(self._run_call(call), slot)

    # ------------------------------------------------------------ calls answered without a task

    def _run_now(self, call: Call, now: NowHandler, slot: Slot) -> bool:
        """Answer ``call`` from the callback that read it: no task, and the reply written from
        the commit's callback. False: the task path must run it (a refusal, which it answers
        the same way, or a call that has to wait)."""
        started = time.perf_counter()
        try:
            result = now(call)
        except Exception:  # a refusal or a failed statement: the task path answers it
            return False
        if result is None:
            return False
        committed = result.committed
        if committed is None or committed.done():
            self._finish_now(call, result, slot, started)
        else:
            self._after_commit(committed, self._finish_now, call, result, slot, started)
        return True

    def _finish_now(self, call: Call, result: Immediate, slot: Slot, started: float) -> None:
        if result.after_commit is not None:
            result.after_commit()
        committed = result.committed
        if committed is not None and (committed.cancelled() or committed.exception() is not None):
            # Rolled back (a full disk...): nothing of it stayed; the task path runs the call
            # again, with the disk guard's retry.
            self._spawn(self._run_call(call), slot)
            return
        frames = encode_message(call.message_id, "__response__", result.content.pack(),
                                self._packet_size)
        try:
            if not self._outbox.put_now(frames):
                self._spawn(self._deliver_later(call, result, frames, started), slot)
                return
        except OutboxClosed:
            self._settle_now(call, result, started, delivered=False)
        else:
            self._settle_now(call, result, started, delivered=True)
        slot.release()

    async def _deliver_later(self, call: Call, result: Immediate, frames: list[bytes],
                             started: float) -> None:
        """A reply that waits for room in the outbox (the client reads slowly)."""
        try:
            await self._outbox.put(frames)
        except OutboxClosed:
            self._settle_now(call, result, started, delivered=False)
            return
        except asyncio.CancelledError:  # the session is closing
            self._settle_now(call, result, started, delivered=False)
            raise
        self._settle_now(call, result, started, delivered=True)

    def _settle_now(self, call: Call, result: Immediate, started: float, *, delivered: bool) -> None:
        hook = result.delivered if delivered else result.undelivered
        if hook is not None:
            hook()
        self._record_call(call, "call" if delivered else "call.unanswered", None, started)

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
        started = time.perf_counter()
        kind, code = "call.unanswered", None  # unless it ends with an answer
        try:
            error = await self._call(call)
            if error is not None:
                code = error.header.get("code", OPERATION_FAILED)
                await self._reply_error(call, error)
            else:
                code = call.error_code
            kind = "call"
        except (WebSocketDisconnect, OSError, OutboxClosed):
            pass  # the connection is gone; the read loop ends the session
        finally:
            self._streams.pop(call.tool_call_id, None)
            self._record_call(call, kind, code, started)

    def _record_call(self, call: Call, kind: str, code: int | None, started: float) -> None:
        self._record(kind, f"{call.toolkit}.{call.tool}", code, time.perf_counter() - started,
                     bounded_arguments(call.summary_arguments, call.request_bytes))

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
                await call.respond(result)
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
            await call.respond(content)
