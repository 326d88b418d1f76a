"""websockets' asyncio client connection, with a lean path for incoming data frames.

A room message is at least two websocket frames, and websockets reads each one through
generic machinery: a generator-based parser, a frame event, its message assembler, and a
reader task woken through the event loop before the message reaches our code (one more
loop turn per message). ``LeanClientConnection`` keeps websockets for everything but that
hot path:

- the opening handshake, pings sent and pongs awaited (keepalive), the close handshake and
  the end of the connection are websockets' own (this is a subclass passed to ``connect``
  as ``create_connection``);
- once the connection is OPEN with no extension negotiated, data frames are parsed here by
  ``localmesh.protocol.ws_frames.FrameReader`` straight from the bytes as they arrive, and
  each whole binary message goes synchronously to the message handler (the ``Connection``);
- control frames (ping, pong, close) are handed byte for byte to websockets' sans-I/O
  protocol, which answers them (a pong, a close reply) exactly as its own path would;
- once the connection is closing (either side sent a close frame), every byte goes through
  websockets' path again; the data frames it parses still reach the same handler, so nothing
  is lost between the two paths and nothing needs a reader task;
- a frame that breaks the protocol (a masked frame from the server, say) fails the
  connection as websockets does: a close frame with the code (1002, 1009) and the reason.

The switch happens at a frame boundary: during the handshake only the HTTP response's bytes
are given to websockets' parser, so the frames behind it in the same read start the lean path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.frames import DATA_OPCODES, Frame, Opcode
from websockets.protocol import State

from localmesh.protocol.ws_frames import FrameReader

logger = logging.getLogger("localmesh.worker.connection")

MessageHandler = Callable[[bytes], None]
CloseHandler = Callable[[], None]
_END_OF_HEADERS = b"\r\n\r\n"
_MAX_HEAD = 256 * 1024  # far past websockets' own limits on a response's headers
OPEN, CONNECTING = State.OPEN, State.CONNECTING


class LeanClientConnection(ClientConnection):
    """A ``ClientConnection`` that pushes whole binary messages to a handler (``attach``)
    instead of queueing them for ``recv``. Nothing here may call ``recv``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reader: FrameReader | None = None  # set while data frames are parsed here
        self._head: bytearray | None = bytearray()  # handshake bytes seen, until its end
        self._on_message: MessageHandler | None = None
        self._on_closed: CloseHandler | None = None
        self._early: list[bytes] = []  # messages that came before a handler was attached
        self._fragments: list[bytes] | None = None  # a fragmented message, websockets' path
        self._fragmented_text = False
        self._abort_handle: asyncio.TimerHandle | None = None
        self.protocol_error: tuple[int, str] | None = None  # the frame reader's, if any

    @property
    def lean(self) -> bool:
        """Whether data frames are being parsed here (not by websockets)."""
        return self._reader is not None

    def attach(self, on_message: MessageHandler, on_closed: CloseHandler) -> None:
        """Hand every binary message to ``on_message`` (those already received first) and
        call ``on_closed`` once the connection is closed (at once if it already is)."""
        self._on_message, self._on_closed = on_message, on_closed
        early, self._early = self._early, []
        for payload in early:
            on_message(payload)
        if self.connection_lost_waiter.done():
            on_closed()

    # ------------------------------------------------------------ reading

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        if reader is not None:
            if self.protocol.state is OPEN:
                if reader.feed(data):
                    return
                data = b""  # taken: what the reader did not parse is in reader.buffered
            self._reader = None  # closing (or failed): websockets' parser takes over
            if reader.failed:
                return  # the connection is failed; websockets discards what comes now
            data = reader.buffered + data
            if not data:
                return
        elif self._head is not None and self.protocol.state is CONNECTING:
            data = self._receive_handshake(data)
            if not data:
                return
        super().data_received(data)

    def _receive_handshake(self, data: bytes) -> bytes:
        """Give websockets the response's bytes; return what follows them for websockets'
        parser, or nothing if it went to the lean path."""
        head = self._head
        assert head is not None
        seen = len(head)
        head += data
        end = head.find(_END_OF_HEADERS, max(0, seen - 3))
        if end < 0:
            if len(head) > _MAX_HEAD:  # junk: websockets refuses it; stop keeping a copy
                self._head = None
            return data  # all of it is the response's (or junk websockets will refuse)
        self._head = None
        split = end + len(_END_OF_HEADERS) - seen
        super().data_received(data[:split])
        rest = data[split:]
        protocol = self.protocol
        if protocol.state is OPEN and not protocol.extensions and protocol.parser_exc is None:
            self._reader = FrameReader(
                masked=False, on_message=self._deliver, on_control=self._control,
                on_error=self._fail, max_message_size=protocol.max_message_size,
                max_frame_size=protocol.max_fragment_size)  # server frames: never unmasked
            if rest:
                self.data_received(rest)
            return b""
        return rest  # refused, or an extension: websockets reads everything

    def _deliver(self, payload: bytes, text: bool) -> bool:
        if text:
            logger.warning("ignoring a text frame: the room protocol is binary only")
        elif self._on_message is not None:
            self._on_message(payload)
        else:
            self._early.append(payload)
        return True

    def _control(self, frame: bytes) -> bool:
        """A ping, pong or close: websockets' protocol handles it and answers it."""
        protocol = self.protocol
        protocol.receive_data(frame)
        events = protocol.events_received()
        try:
            self.send_data()
        except Exception as exc:  # as websockets' data_received: recorded, not raised
            self.set_connection_exc(exc)
        if protocol.close_expected() and self.close_deadline is None:
            if self.close_timeout is not None:
                self.close_deadline = self.loop.time() + self.close_timeout
        for event in events:
            self.process_event(event)
        return protocol.state is OPEN

    def _fail(self, code: int, reason: str) -> None:
        """The server broke the protocol: fail the connection as websockets' parser would
        (a close frame with ``code``), then wait at most ``close_timeout`` for the server
        to close the TCP connection."""
        self.protocol_error = (code, reason)
        logger.warning("the room server broke the websocket protocol: %s (closing with %d)",
                       reason, code)
        self.protocol.fail(code, reason)
        try:
            self.send_data()
        except Exception as exc:
            self.set_connection_exc(exc)
        if self.close_timeout is not None and self._abort_handle is None:
            self._abort_handle = self.loop.call_later(self.close_timeout, self.transport.abort)

    def process_event(self, event: Any) -> None:
        """websockets' path: data frames (while closing) go to the handler, not ``recv``."""
        if self.response is None or not isinstance(event, Frame):
            super().process_event(event)
            return
        opcode = event.opcode
        if opcode not in DATA_OPCODES:
            super().process_event(event)  # a pong acknowledges a ping
            return
        payload = bytes(event.data)
        if opcode is Opcode.CONT:
            if self._fragments is None:
                return  # websockets' parser refuses this before it gets here
            self._fragments.append(payload)
            if not event.fin:
                return
            payload, self._fragments = b"".join(self._fragments), None
            text = self._fragmented_text
        else:
            text = opcode is Opcode.TEXT
            if not event.fin:
                self._fragments, self._fragmented_text = [payload], text
                return
        self._deliver(payload, text)

    def connection_lost(self, exc: Exception | None) -> None:
        self._reader = None
        if self._abort_handle is not None:
            self._abort_handle.cancel()
            self._abort_handle = None
        super().connection_lost(exc)
        if self._on_closed is not None:
            self._on_closed()
