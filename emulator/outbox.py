"""Every write to one client goes through its outbox: a bounded buffer with one writer.

A client that reads slowly fills its outbox; one that stops reading makes a write stall.
Either way the outbox gives up on it (``on_stalled``) instead of letting the server wait:
room events are dropped into the buffer without waiting (``put_nowait``), and a call's own
replies wait for room at most ``write_timeout`` seconds. The frames of one message are
queued and written together, so two messages never interleave on the socket.

A message put while nothing waits in the buffer is written at once (``write_now``) if the
socket takes it without waiting; otherwise the writer task hands the socket everything
queued when it runs: the messages put in the same turn of the event loop go to
``send_frames`` as one list of frames, which the websocket writes in one transport write
(one system call for a pipelined burst).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable

logger = logging.getLogger("localmesh.outbox")

DEFAULT_OUTBOX_BYTES = 8 * 1024 * 1024
DEFAULT_WRITE_TIMEOUT = 10.0

# Writes frames back to back, in order (the websocket's ``send_frames``); raising means
# the connection is gone.
SendFrames = Callable[[list[bytes]], Awaitable[None]]
# Writes frames at once if the socket takes them without waiting; False: it would wait.
WriteNow = Callable[[list[bytes]], bool]
BATCH_BYTES = 256 * 1024  # one hand-off to the socket takes whole messages up to about this
# Messages up to this size may skip the writer task (``write_now``). Bigger ones (a file's
# chunks) always go through it: written straight from the call, a 100 MB download cost the
# server about 1.7x the CPU (measured), with no gain in time.
WRITE_NOW_BYTES = 64 * 1024


class OutboxClosed(ConnectionError):
    """The client is gone or was given up on; nothing more is written to it."""


class Outbox:
    def __init__(
        self,
        send_frames: SendFrames,
        *,
        write_now: WriteNow | None = None,
        max_bytes: int = DEFAULT_OUTBOX_BYTES,
        write_timeout: float = DEFAULT_WRITE_TIMEOUT,
        on_stalled: Callable[[str], None],
    ) -> None:
        self._send_frames = send_frames
        self._write_now = write_now
        self.max_bytes = max_bytes
        self.write_timeout = write_timeout
        self._on_stalled = on_stalled
        self._messages: deque[tuple[list[bytes], int]] = deque()
        self.buffered = 0  # bytes queued and not yet handed to the socket
        self._wake = asyncio.Event()  # the writer has something to write
        self._room = asyncio.Event()  # a waiting put may have room now
        self._room.set()
        self.closed = False
        self.reason = ""
        self._writer: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop(), name="outbox-writer")

    # ------------------------------------------------------------ putting

    def _fits(self, size: int) -> bool:
        # One message bigger than the whole buffer still goes out, alone.
        return self.buffered == 0 or self.buffered + size <= self.max_bytes

    def _enqueue(self, frames: list[bytes], size: int) -> None:
        if (not self._messages and size <= WRITE_NOW_BYTES and self._write_now is not None
                and self._write_now(frames)):
            return  # nothing queued before it and the socket took it: no wake-up of the writer
        self._messages.append((frames, size))
        self.buffered += size
        if not self._fits(1):
            self._room.clear()
        self._wake.set()

    def put_now(self, frames: list[bytes]) -> bool:
        """Queue a message if it fits now; False leaves it to ``put`` (which waits)."""
        if self.closed:
            raise OutboxClosed(self.reason)
        size = sum(map(len, frames))
        if not self._fits(size):
            return False
        self._enqueue(frames, size)
        return True

    def put_nowait(self, frames: list[bytes]) -> None:
        """Queue a message without waiting; a full buffer means the client cannot keep up."""
        if not self.put_now(frames):
            self.stall(
                f"the client fell {self.buffered} bytes behind (outbox limit {self.max_bytes})"
            )
            raise OutboxClosed(self.reason)

    async def put(self, frames: list[bytes]) -> None:
        """Queue a message, waiting up to ``write_timeout`` for room in the buffer."""
        if self.put_now(frames):  # the usual case: no timer to set up
            return
        size = sum(map(len, frames))
        try:
            async with asyncio.timeout(self.write_timeout):
                while not self.closed and not self._fits(size):
                    self._room.clear()
                    await self._room.wait()
        except TimeoutError:
            self.stall(f"the client read nothing for {self.write_timeout:g} s")
        if self.closed:
            raise OutboxClosed(self.reason)
        self._enqueue(frames, size)

    # ------------------------------------------------------------ writing

    async def _write_loop(self) -> None:
        try:
            while not self.closed:
                if not self._messages:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                frames, count, size = self._next_batch()
                try:
                    async with asyncio.timeout(self.write_timeout):
                        await self._send_frames(frames)
                except TimeoutError:
                    self.stall(f"a write to the client made no progress for {self.write_timeout:g} s")
                    return
                except Exception as error:  # the socket is gone: nothing more can be written
                    logger.info("outbox: a write failed, the connection is gone: %r", error)
                    self._close(f"the connection is gone ({type(error).__name__})")
                    return
                for _ in range(count):
                    self._messages.popleft()
                self.buffered -= size
                if self._fits(1):
                    self._room.set()
        except asyncio.CancelledError:
            self._close("the connection is closing")
            raise

    def _next_batch(self) -> tuple[list[bytes], int, int]:
        """The frames of the queued messages to write together (whole messages, at least
        one, up to about ``BATCH_BYTES``), how many messages that is and their size."""
        frames, size = self._messages[0]
        if len(self._messages) == 1 or size >= BATCH_BYTES:
            return frames, 1, size
        batch = list(frames)
        count = 1
        for more, more_size in itertools.islice(self._messages, 1, None):
            if size + more_size > BATCH_BYTES:
                break
            batch += more
            size += more_size
            count += 1
        return batch, count, size

    async def flush(self, timeout: float) -> None:
        """Wait until everything queued so far was written (or the outbox closed)."""
        try:
            async with asyncio.timeout(timeout):
                while self._messages and not self.closed:
                    self._room.clear()
                    await self._room.wait()
        except TimeoutError:
            pass

    # ------------------------------------------------------------ closing

    def stall(self, reason: str) -> None:
        """Give up on the client: drop what is queued and tell the session once."""
        if self.closed:
            return
        self._close(reason)
        self._on_stalled(reason)

    def _close(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.reason = reason
        self._messages.clear()
        self.buffered = 0
        self._room.set()
        self._wake.set()

    async def aclose(self) -> None:
        self._close(self.reason or "the connection is closing")
        if self._writer is not None and self._writer is not asyncio.current_task():
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
