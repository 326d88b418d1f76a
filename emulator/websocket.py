"""uvicorn's websocket protocol, with a lean path for data frames.

A room message is at least two websocket frames each way (a header packet and a data
packet), and an upload from the SDK is a frame per KiB, so the cost per frame is the
emulator's cost per operation. uvicorn's implementation (websockets' sans-I/O parser)
spends most of it in generic machinery: a generator-based parser, a pause and resume of
the socket (two ``epoll_ctl`` calls) for every message, and one ``send`` system call per
frame written. ``FastWebSocketProtocol`` keeps uvicorn for everything but the hot path:

- the HTTP handshake, denials, close handshakes, pings and pongs, the ASGI interface and
  uvicorn's hooks are uvicorn's own (this is a subclass; FastAPI and Starlette see nothing
  different);
- once a connection is open without extensions, data frames (binary, text, continuation)
  are parsed here, from the bytes as they arrive, and unmasked with websockets' C helper;
  control frames are handed, byte for byte, to uvicorn's parser;
- reading is paused only when more than ``READ_HIGH_WATER`` bytes wait for the app;
- frames written in one turn of the event loop leave in one ``write`` (one system call for
  a whole pipelined burst), just before the loop next waits for I/O.

With permessage-deflate negotiated (``RoomServer(compression=True)``) every frame takes
uvicorn's path unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sized
from typing import Any, NamedTuple, Protocol

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

try:  # the C helper ships in websockets' wheels; the pure-Python one is the fallback
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover
    from websockets.utils import apply_mask

from localmesh.protocol.loop_turn import ready_queue
from localmesh.protocol.ws_frames import (
    CLOSE_INVALID_DATA,
    OP_BINARY,
    OP_TEXT,
    FrameReader,
    frame_header,
)

# The scope extension through which the app may call this protocol's ASGI receive and send
# directly, without the middleware wrappers in between (``lean_websocket`` in app.py).
LEAN_EXTENSION = "localmesh.lean_websocket"
READ_HIGH_WATER = 1024 * 1024  # bytes received but not yet read by the app: pause above this
READ_LOW_WATER = 256 * 1024  # ... and resume below this
WRITE_NOW = 256 * 1024  # frames pending past this many bytes are written at once
COALESCE = 64 * 1024  # payloads up to this size are copied into one write with their neighbours


# A data message for the app: its payload and whether it was text; returns whether to go on.
Sink = Callable[[bytes, bool], bool]


class ReadObserver(Protocol):
    """Told as the handling of each read from the socket starts and ends (the store commits
    what a read wrote as it ends)."""

    def read_started(self) -> None: ...
    def read_ended(self) -> None: ...


# The header of each unmasked binary frame short enough for the 7-bit length (most frames).
_BINARY_HEADERS = [frame_header(OP_BINARY, length) for length in range(126)]


def _joined(frames: list[bytes]) -> bytes | None:
    """Binary frames with their headers, in one buffer; None when one is too big to copy."""
    out: list[bytes] = []
    for frame in frames:
        length = len(frame)
        if length > COALESCE:
            return None
        out.append(_BINARY_HEADERS[length] if length < 126 else frame_header(OP_BINARY, length))
        out.append(frame)
    return b"".join(out)


class LeanChannel(NamedTuple):
    """What the app may call on this protocol directly (``LEAN_EXTENSION`` in the scope)."""

    receive: Callable[[], Awaitable[Any]]
    send: Callable[[Any], Awaitable[None]]
    send_frames: Callable[[list[bytes]], Awaitable[None]]
    write_frames: Callable[[list[bytes]], bool]
    set_sink: Callable[[Sink, ReadObserver | None], list[Any]]
    resume_sink: Callable[[], None]


class FastWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lean = False  # data frames parsed here (set once the handshake is done)
        self._reader: FrameReader | None = None  # data frames' parser, once lean
        self._requested = False  # the upgrade request was parsed
        self._frames_seen_by_uvicorn = False  # then uvicorn's parser keeps the frames
        # Where data messages go when the app takes them synchronously (``set_sink``), and
        # whether it said to stop: then bytes are held unparsed until ``resume_sink``.
        self._sink: Sink | None = None
        self._reads: ReadObserver | None = None
        self._stopped = False
        self._waiting_bytes = 0  # delivered to the app's queue, not yet read
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._flush_handle: asyncio.Handle | None = None
        # The callbacks the loop runs in this turn (empty: none but this one); on a loop that
        # does not show them (uvloop), never empty: each write schedules the end of its turn.
        self._ready_queue: Sized = ready_queue(self.loop)

    def handle_connect(self, event: Any) -> None:
        self._requested = True  # the upgrade request is parsed: any byte after it is a frame's
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:  # None: the handshake was refused before the app was called
            scope["extensions"][LEAN_EXTENSION] = LeanChannel(
                self.receive, self.send, self.send_frames, self.write_frames, self.set_sink,
                self.resume_sink)

    # ------------------------------------------------------------ reading

    def data_received(self, data: bytes) -> None:
        if not self._lean and not self._go_lean():
            requested = self._requested
            super().data_received(data)
            if requested or (self._requested and not data.endswith(b"\r\n\r\n")):
                # Frame bytes reached uvicorn's parser (sent before the upgrade's answer, in a
                # later segment than the request: uvicorn's HTTP layer drops any in the
                # request's own): it may hold half a frame, so it keeps this connection's.
                self._frames_seen_by_uvicorn = True
            return
        reader = self._reader
        if self._stopped:
            reader.hold(data)
            if reader.buffered_size > READ_HIGH_WATER and not self.read_paused:
                self.read_paused = True
                self.transport.pause_reading()
            return
        reads = self._reads
        if reads is None:
            self._read_on(reader, data)
            return
        reads.read_started()
        try:
            self._read_on(reader, data)
        finally:
            reads.read_ended()

    def _read_on(self, reader: FrameReader, data: bytes = b"") -> None:
        """Parse ``data`` after what is held, until the sink says stop."""
        while not reader.feed(data):
            if not self._lean or reader.failed:
                return
            if not self.close_sent:
                self._stopped = True  # the rest waits for resume_sink
                return
            data = b""  # the app closed meanwhile: read on, for the peer's close reply

    # ------------------------------------------------------------ the synchronous sink

    def set_sink(self, sink: Sink, reads: ReadObserver | None = None) -> list[Any]:
        """From now on hand data messages to ``sink`` as they are parsed, in the callback
        that reads them, instead of queueing ASGI events: no task wake-up per message.
        ``reads`` is told as each read from the socket starts and ends. Returns the events
        queued before (the app handles those first, in order)."""
        self._sink = sink
        self._reads = reads
        earlier = []
        while not self.queue.empty():
            event = self.queue.get_nowait()
            if event["type"] != "websocket.receive":
                self.queue.put_nowait(event)  # a disconnect stays for the app's receive
                break
            self._waiting_bytes -= len(event.get("bytes") or event.get("text") or "")
            earlier.append(event)
        return earlier

    def resume_sink(self) -> None:
        """The sink takes messages again: parse what was held, then read on."""
        if not self._stopped:
            return
        self._stopped = False
        reader = self._reader
        if reader is None or not self._lean:
            return
        self._read_on(reader)
        if not self._stopped and self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()

    def _go_lean(self) -> bool:
        """Take over data frames once the connection is open with no extension, and only
        if uvicorn's parser never saw a frame's byte (its buffer can be empty while it
        holds a frame's header, waiting for the payload)."""
        conn = self.conn
        if (
            not self._frames_seen_by_uvicorn and self.handshake_complete
            and self.initial_response is None and not self.close_sent
            and conn.state is State.OPEN and not conn.extensions and not conn.reader.buffer
        ):
            self._lean = True
            self._reader = FrameReader(
                masked=True, on_message=self._deliver, on_control=self._control,
                on_error=self._fail, max_message_size=conn.max_message_size,
                max_frame_size=conn.max_fragment_size, unmask=apply_mask)
        return self._lean

    def _deliver(self, payload: bytes, text: bool) -> bool:
        """Hand a whole data message to the app."""
        if self.close_sent:
            return True  # past websocket.close: reads stay on until the peer's close reply
        if self._sink is not None:
            return self._sink(payload, text)
        if text:
            try:
                event: dict[str, Any] = {"type": "websocket.receive", "text": payload.decode()}
            except UnicodeDecodeError:
                self._fail(CLOSE_INVALID_DATA, "text frame is not UTF-8")
                return False
        else:
            event = {"type": "websocket.receive", "bytes": payload}
        self.queue.put_nowait(event)
        self._waiting_bytes += len(payload)
        if self._waiting_bytes > READ_HIGH_WATER and not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()
        return True

    def _control(self, frame: bytes) -> bool:
        self._flush()  # a pong or a close goes after the frames already written
        self.conn.receive_data(frame)
        if self.conn.parser_exc is not None:
            self._lean = False
            self.handle_parser_exception()
            return False
        self.handle_events()
        if self.conn.state is not State.OPEN:
            self._lean = False  # closing: uvicorn's parser takes whatever comes now
            return False
        return True

    def _fail(self, code: int, reason: str) -> None:
        """Close the connection for a protocol violation, as uvicorn's parser would."""
        self._lean = False
        self._flush()
        self.conn.fail(code, reason)
        self.handle_parser_exception()

    async def receive(self) -> Any:
        event = await self.queue.get()
        if event["type"] == "websocket.receive":
            self._waiting_bytes -= len(event.get("bytes") or event.get("text") or "")
        if self.read_paused and (self._waiting_bytes <= READ_LOW_WATER or self.queue.empty()):
            self.read_paused = False
            self.transport.resume_reading()
        return event

    # ------------------------------------------------------------ writing

    async def send(self, message: Any) -> None:
        if (
            self._lean and message["type"] == "websocket.send" and not self.close_sent
            and self.initial_response is None
        ):
            if not self.writable.is_set():
                await self.writable.wait()
            if self.disconnected:
                raise ClientDisconnected()
            data = message.get("bytes")
            if data is not None:
                self._queue_frames([data])
            else:
                self._queue_frames([message.get("text", "").encode()], OP_TEXT)
            return
        self._flush()
        await super().send(message)
        if message["type"] == "websocket.close" and self._stopped:
            # Past the close, held data is dropped and the peer's close reply must be read.
            self.resume_sink()

    async def send_frames(self, frames: list[bytes]) -> None:
        """Binary frames that belong together (the packets of one message, or of several),
        written whole (see ``write_frames``), waiting while the transport is full."""
        if self.write_frames(frames):
            return
        if not (self._lean and not self.close_sent and self.initial_response is None):
            for frame in frames:
                await self.send({"type": "websocket.send", "bytes": frame})
            return
        await self.writable.wait()
        if self.disconnected:
            raise ClientDisconnected()
        self._write_whole(frames)

    def write_frames(self, frames: list[bytes]) -> bool:
        """Write binary frames without waiting, if the connection takes them now (lean, open,
        its transport under its high-water mark); False leaves it to ``send_frames``."""
        if not (
            self._lean and not self.close_sent and self.initial_response is None
            and self.writable.is_set() and not self.disconnected
        ):
            return False
        self._write_whole(frames)
        return True

    def _write_whole(self, frames: list[bytes]) -> None:
        """At once if nothing else was written in this turn of the loop (no added latency),
        else with the rest of the turn's output at its end (one write for a burst). Frames
        with a big payload (a file's chunk) take the queue, which writes such a payload as it
        is rather than copying it into a joined buffer."""
        joined = None if self._flush_handle is not None or self._out else _joined(frames)
        if joined is None:
            self._queue_frames(frames)
            return
        if not self.transport.is_closing():
            self.transport.write(joined)
        if not self._ready_queue:
            # Nothing else runs before the loop next polls (asyncio's loop keeps this turn's
            # callbacks in ``_ready``): no write can follow in this turn, so no end of turn
            # to schedule (one loop pass less per reply when requests come one by one).
            return
        # Whatever else this turn writes waits for its end, and goes in one write.
        self._flush_handle = self.loop.call_soon(self._flush)

    def _queue_frames(self, payloads: list[bytes], opcode: int = OP_BINARY) -> None:
        """Frames held for the end of this turn's write (at once past ``WRITE_NOW`` bytes)."""
        out = self._out
        size = self._out_bytes
        for payload in payloads:
            length = len(payload)
            header = (_BINARY_HEADERS[length] if length < 126 and opcode == OP_BINARY
                      else frame_header(opcode, length))
            out.append(header)
            out.append(payload)
            size += len(header) + length
        self._out_bytes = size
        if size >= WRITE_NOW:
            self._flush()
        elif self._flush_handle is None:
            # Written on the next turn of the loop, with whatever else this turn writes.
            self._flush_handle = self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if not self._out:
            return
        out, self._out, self._out_bytes = self._out, [], 0
        if self.transport.is_closing():
            return
        pending: list[bytes] = []
        for part in out:
            if len(part) <= COALESCE:
                pending.append(part)
                continue
            if pending:
                self.transport.write(b"".join(pending))
                pending = []
            self.transport.write(part)  # a big payload is not copied into a joined buffer
        if pending:
            self.transport.write(b"".join(pending))

    def hang_up(self) -> None:
        """Close the TCP connection with no close frame, once what was written (including
        frames held for the end of this loop turn) is flushed: a drop fault's cut."""
        self._flush()
        self.transport.close()

    # ------------------------------------------------------------ uvicorn's paths that write

    def send_keepalive_ping(self) -> None:
        self._flush()
        super().send_keepalive_ping()

    def shutdown(self) -> None:
        self._flush()
        super().shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lean = False
        self._sink = self._reads = None
        self._out, self._out_bytes = [], 0
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        super().connection_lost(exc)

