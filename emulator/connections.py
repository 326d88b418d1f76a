"""Guards on uvicorn's TCP connections, where the ASGI app cannot reach.

- A cap on open connections and a deadline for sending a complete HTTP request: a
  connection that sends half a request head is cut after ``handshake_timeout``, and when
  the cap is reached the oldest such connection makes room for the newcomer, so idle
  half-open connections can never lock out ``/healthz`` or a room client.
- A hard abort of one websocket (``abort_for(scope)``) for a client that stopped reading:
  a close handshake would wait on that very client; and a close without a handshake
  (``close_for(scope)``) for the faults that drop a connection.
- A sweep for connections that are closing but cannot flush to a client that never
  reads, and ``abort_all()`` for shutdown.
- A per-connection frame size for room sockets, checked before a frame is read.

This is the one module that knows uvicorn's protocol classes (h11 for HTTP, websockets'
sans-I/O implementation for websockets); everything else goes through it.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from localmesh.emulator.limits import Limits
from localmesh.emulator.websocket import FastWebSocketProtocol

logger = logging.getLogger("localmesh.connections")

FD_RESERVE = 64  # descriptors kept for SQLite, logs and the listening socket
# asyncio accepts up to the listen backlog in one go, before any protocol sees a connection:
# the cap leaves that many descriptors free, so a small backlog keeps the cap high. Under a
# flood several such rounds can be in flight at once, so the listener also stops accepting
# while the descriptors in use reach the budget (see ``listener``).
ACCEPT_BACKLOG = 128
SWEEP_INTERVAL = 1.0
_REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\nconnection: close\r\n"
    b"x-localmesh-reason: too many open connections\r\ncontent-length: 27\r\n\r\n"
    b"too many open connections\r\n"
)


def open_file_limit() -> int:
    """The process's open-file limit, raised to its hard limit when that is allowed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


class ConnectionGuard:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        usable = open_file_limit() - FD_RESERVE
        self.max_connections = max(8, min(limits.max_connections, usable - ACCEPT_BACKLOG))
        self.fd_budget = max(self.max_connections + 8, usable)
        self.accepted_unseen = 0  # accepted by the listener, not yet seen by a protocol
        self.open: set[asyncio.Protocol] = set()
        self._pending: OrderedDict[H11Protocol, asyncio.TimerHandle] = OrderedDict()
        self._sockets: dict[int, WebSocketsSansIOProtocol] = {}  # id(scope) -> protocol
        self._closing_since: dict[WebSocketsSansIOProtocol, float] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self.refused = 0
        self.evicted = 0
        self.timed_out = 0

    # ------------------------------------------------------------ uvicorn config

    def listener(self, host: str, port: int) -> socket.socket:
        """The listening socket to give uvicorn: it leaves connections in the kernel's queue
        while this process's descriptors are at their budget, rather than accepting into
        EMFILE (asyncio would log an error and stop accepting for a second)."""
        guard = self
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]

        class GuardedListener(socket.socket):
            def accept(self) -> tuple[socket.socket, Any]:
                if len(guard.open) + guard.accepted_unseen >= guard.fd_budget:
                    # asyncio reads this as "nothing more to accept" and asks again on the
                    # next turn of the loop, by when evicted connections have let go.
                    raise BlockingIOError("localmesh: at the open-file budget")
                accepted = super().accept()
                guard.accepted_unseen += 1
                return accepted

        sock = GuardedListener(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError:
            sock.close()
            raise
        return sock

    def protocols(self) -> dict[str, Any]:
        """The ``http=`` and ``ws=`` classes to give ``uvicorn.Config``, bound to this guard."""
        guard = self

        class GuardedH11(H11Protocol):
            def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
                guard.accepted_unseen = max(0, guard.accepted_unseen - 1)
                super().connection_made(transport)
                guard._opened(self)

            def data_received(self, data: bytes) -> None:
                if self in guard._pending:
                    self._head_bytes = getattr(self, "_head_bytes", 0) + len(data)
                    if self._head_bytes > guard.limits.max_header_bytes:
                        guard._refuse_head(self)
                        return
                super().data_received(data)
                if self.cycle is not None or self.transport.get_protocol() is not self:
                    guard._handshake_done(self)  # a whole request head arrived

            def connection_lost(self, exc: Exception | None) -> None:
                guard._lost(self)
                super().connection_lost(exc)

        class GuardedWebSocket(FastWebSocketProtocol):  # uvicorn's, with the lean data path
            def connection_made(self, transport: Any) -> None:
                super().connection_made(transport)
                guard.open.add(self)

            def handle_connect(self, event: Any) -> None:
                super().handle_connect(event)
                scope = getattr(self, "scope", None)
                if scope is not None:
                    guard._sockets[id(scope)] = self

            def connection_lost(self, exc: Exception | None) -> None:
                guard.open.discard(self)
                guard._closing_since.pop(self, None)
                scope = getattr(self, "scope", None)
                if scope is not None and guard._sockets.get(id(scope)) is self:
                    del guard._sockets[id(scope)]
                super().connection_lost(exc)

        return {"http": GuardedH11, "ws": GuardedWebSocket, "backlog": ACCEPT_BACKLOG}

    # ------------------------------------------------------------ HTTP handshakes

    def _opened(self, protocol: H11Protocol) -> None:
        if len(self.open) >= self.max_connections:
            if self._pending:
                oldest, timer = self._pending.popitem(last=False)
                timer.cancel()
                self.evicted += 1
                oldest.transport.abort()
            else:
                self.refused += 1
                protocol.transport.write(_REFUSAL)
                protocol.transport.close()
                return
        self.open.add(protocol)
        loop = asyncio.get_running_loop()
        self._pending[protocol] = loop.call_later(
            self.limits.handshake_timeout, self._handshake_expired, protocol
        )

    def _refuse_head(self, protocol: H11Protocol) -> None:
        # A 403, not the parsers' 400/431: the SDK retries those for ever (a long token).
        timer = self._pending.pop(protocol, None)
        if timer is not None:
            timer.cancel()
        reason = (f"request head over {self.limits.max_header_bytes} bytes"
                  " (a participant token this long is refused; grant fewer queues or paths)")
        body = reason.encode() + b"\r\n"
        protocol.transport.write(
            b"HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\nconnection: close\r\n"
            + f"x-localmesh-reason: {reason}\r\ncontent-length: {len(body)}\r\n\r\n".encode() + body)
        protocol.transport.close()

    def _handshake_done(self, protocol: H11Protocol) -> None:
        timer = self._pending.pop(protocol, None)
        if timer is not None:
            timer.cancel()
        if protocol.transport.get_protocol() is not protocol:
            self.open.discard(protocol)  # now counted as its websocket

    def _handshake_expired(self, protocol: H11Protocol) -> None:
        if self._pending.pop(protocol, None) is not None:
            self.timed_out += 1
            protocol.transport.abort()

    def _lost(self, protocol: H11Protocol) -> None:
        timer = self._pending.pop(protocol, None)
        if timer is not None:
            timer.cancel()
        self.open.discard(protocol)

    # ------------------------------------------------------------ websockets

    def _socket(self, scope: dict[str, Any]) -> WebSocketsSansIOProtocol | None:
        return self._sockets.get(id(scope))

    def abort_for(self, scope: dict[str, Any]) -> Callable[[], None] | None:
        """A function that cuts this websocket's TCP connection at once."""
        protocol = self._socket(scope)
        if protocol is None:
            return None
        return protocol.transport.abort

    def close_for(self, scope: dict[str, Any]) -> Callable[[], None] | None:
        """A function that closes this websocket's TCP connection once what was written is
        flushed, with no websocket close frame: to the peer, a lost connection (drop faults)."""
        protocol = self._socket(scope)
        if protocol is None:
            return None
        # Frames the protocol holds for the end of this loop turn go out first.
        return getattr(protocol, "hang_up", protocol.transport.close)

    def limit_frames(self, scope: dict[str, Any], max_bytes: int) -> None:
        """Refuse frames over ``max_bytes`` on this websocket before reading them (1009)."""
        protocol = self._socket(scope)
        if protocol is not None:
            protocol.conn.max_message_size = max_bytes

    def abort_all(self) -> int:
        """Cut every open connection (the end of a shutdown, or a second signal)."""
        cut = 0
        for protocol in list(self.open) + list(self._pending):
            transport = getattr(protocol, "transport", None)
            if transport is not None:
                transport.abort()
                cut += 1
        return cut

    # ------------------------------------------------------------ stuck closes

    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep(), name="localmesh-connection-sweep")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        for timer in self._pending.values():
            timer.cancel()

    async def _sweep(self) -> None:
        # A websocket closed (ping timeout, close frame, app ended) whose buffered bytes
        # cannot reach a client that stopped reading stays open for ever: cut it.
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            now = loop.time()
            for protocol in list(self._sockets.values()):
                transport = protocol.transport
                if transport is None or not transport.is_closing():
                    continue
                since = self._closing_since.setdefault(protocol, now)
                if now - since >= self.limits.write_timeout:
                    logger.warning("cutting a websocket that could not finish closing in %g s",
                                   self.limits.write_timeout)
                    transport.abort()
