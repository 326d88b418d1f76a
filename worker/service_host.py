"""``ServiceHost``: serve agents over HTTP so a room can call them in, as MeshAgent's does.

    host = ServiceHost()                      # MESHAGENT_HOST / MESHAGENT_PORT, else 0.0.0.0:8080

    @host.path(path="/worker", identity="worker")
    class MyWorker(Worker):
        def __init__(self):
            super().__init__(queue="tasks", ...)

    asyncio.run(host.run())                   # until SIGTERM or Ctrl-C

Routes, the same as the MeshAgent SDK's:

* ``GET /``: liveness, ``{"ok": true}``;
* ``GET /.well-known/meshagent-service.json``: the service spec (one port, an endpoint per path);
* ``POST <path>``: the ``room.call`` webhook ``{"event": "room.call", "data": {"room_name",
  "room_url", "token", "arguments"}}``. It answers ``{"ok": true}`` at once; then the agent
  class is built with no arguments, joins ``room_url`` with ``token`` (so it has the token's
  identity), and runs until the room closes, a ``dismiss`` message arrives or the host stops.
  ``room.started`` and ``room.ended`` events are accepted and ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import jwt
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from .room import RoomClient

logger = logging.getLogger("localmesh.service")

WELL_KNOWN_PATH = "/.well-known/meshagent-service.json"
DEFAULT_PORT = 8080  # what the MeshAgent ServiceHost binds when given no port
STOP_TIMEOUT = 30.0


class Portable(Protocol):
    """What a path serves: a class built with no arguments, started in a room."""

    async def start(self, *, room: RoomClient) -> None: ...
    async def stop(self) -> None: ...


@dataclass(frozen=True)
class ServicePath:
    path: str
    cls: Callable[[], Portable]
    identity: str | None = None
    permissions: dict[str, Any] | None = None  # the token's ``api`` scope; None = agent default


class CallRefused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ServiceHost:
    def __init__(
        self,
        *,
        host: str | None = None,
        port: int | None = None,
        webhook_secret: str | None = None,
        name: str | None = None,
    ) -> None:
        self.host = host or os.environ.get("MESHAGENT_HOST") or "0.0.0.0"
        env_port = os.environ.get("MESHAGENT_PORT")
        # No port anywhere: bind 8080 and advertise "*", as the MeshAgent host does.
        self._auto_port = port is None and not env_port
        self.port = port if port is not None else _port_from_env(env_port)
        self.webhook_secret = webhook_secret
        self.name = name
        self.paths: list[ServicePath] = []
        self.agents: list[dict[str, Any]] = []
        self._server: uvicorn.Server | None = None
        self._main_loop: asyncio.Task[None] | None = None
        self._calls: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()

    # ------------------------------------------------------------ registering agents

    def path(
        self, path: str, *, identity: str | None = None, permissions: dict[str, Any] | None = None
    ) -> Callable[[type], type]:
        """Class decorator: serve the class at ``path`` under participant ``identity``."""

        def register(cls: type) -> type:
            self.add_path(path, cls=cls, identity=identity, permissions=permissions)
            return cls

        return register

    def add_path(
        self, path: str, *, cls: Callable[[], Portable], identity: str | None = None,
        permissions: dict[str, Any] | None = None,
    ) -> None:
        if not path.startswith("/") or path == "/" or path == WELL_KNOWN_PATH:
            raise ValueError(f"a service path starts with '/' and is not '/' or {WELL_KNOWN_PATH}")
        if self.has_path(path):
            raise ValueError(f"{path!r} is already served by this host")
        if permissions is not None and hasattr(permissions, "model_dump"):
            permissions = permissions.model_dump(mode="json")  # an SDK ApiScope works too
        self.paths.append(ServicePath(path, cls, identity, permissions))

    def has_path(self, path: str) -> bool:
        return any(p.path == path for p in self.paths)

    def service_spec(self) -> dict[str, Any]:
        """What ``GET /.well-known/meshagent-service.json`` answers."""
        return {
            "version": "v1",
            "kind": "Service",
            "metadata": {"name": self.name or "<YOUR_SERVICE_NAME>"},
            "agents": list(self.agents),
            "ports": [{
                "num": "*" if self._auto_port else self.port,
                "type": "http",
                "endpoints": [
                    {"path": p.path,
                     "meshagent": {"identity": p.identity or "agent", "api": p.permissions}}
                    for p in self.paths
                ],
            }],
            "container": {"image": "", "template": "agent"},
        }

    # ------------------------------------------------------------ serving

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    def app(self) -> Starlette:
        routes = [
            Route("/", self._liveness, methods=["GET"]),
            Route(WELL_KNOWN_PATH, self._describe, methods=["GET"]),
            *(Route(p.path, self._webhook_for(p), methods=["GET", "POST"]) for p in self.paths),
            *(WebSocketRoute(p.path, self._refuse_websocket) for p in self.paths),
        ]
        return Starlette(routes=routes)

    async def start(self) -> None:
        """Listen; returns once the port is bound (``self.port`` is then the real one)."""
        if self._server is not None:
            raise RuntimeError("the service host is already started")
        self._stopping.clear()
        config = uvicorn.Config(
            self.app(), host=self.host, port=self.port, lifespan="off", log_level="warning",
            access_log=False,
        )
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        # startup() rather than serve(): serve() takes over the process's signals.
        try:
            await server.startup()
            listening = server.started
        except SystemExit:  # uvicorn exits when it cannot bind; say so instead
            listening = False
        if not listening:
            raise OSError(f"could not listen on {self.host}:{self.port} (is it in use?)")
        self.port = server.servers[0].sockets[0].getsockname()[1]
        self._server = server
        self._main_loop = asyncio.create_task(server.main_loop())
        logger.info("service host on %s serving %s", self.url, ", ".join(p.path for p in self.paths))

    async def stop(self) -> None:
        """Stop the agents in rooms (each gets ``stop()``), then the HTTP server."""
        self._stopping.set()
        if self._calls:
            await asyncio.wait(self._calls, timeout=STOP_TIMEOUT)
        if self._server is not None and self._main_loop is not None:
            self._server.should_exit = True
            await self._main_loop
            await self._server.shutdown()
        self._server = None
        self._main_loop = None

    async def run(self) -> None:
        """Serve until SIGTERM, SIGINT or SIGABRT, then stop cleanly."""
        await self.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT, signal.SIGABRT)
        for sig in signals:
            # A loop signal handler wakes the loop at once, even when the host is idle.
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)
            await self.stop()

    # ------------------------------------------------------------ routes

    async def _liveness(self, request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def _describe(self, request: Request) -> Response:
        return JSONResponse(self.service_spec())

    def _webhook_for(self, service_path: ServicePath) -> Callable[[Request], Any]:
        async def webhook(request: Request) -> Response:
            try:
                return await self._webhook(request, service_path)
            except CallRefused as refused:
                logger.warning("refused a call to %s: %s", service_path.path, refused.message)
                return JSONResponse({"error": refused.message}, status_code=refused.status)

        return webhook

    async def _refuse_websocket(self, websocket: WebSocket) -> None:
        # MeshAgent's host can also take the call over a websocket; rooms here always POST.
        message = "localmesh's ServiceHost takes room.call as a POST webhook, not over a websocket"
        logger.warning("refused a websocket call to %s", websocket.url.path)
        await websocket.send_denial_response(JSONResponse({"error": message}, status_code=501))

    async def _webhook(self, request: Request, service_path: ServicePath) -> Response:
        if request.method == "GET":
            raise CallRefused(405, f"POST a room.call webhook to {service_path.path}")
        body = await request.body()
        try:
            payload = json.loads(body)
        except ValueError as error:
            raise CallRefused(400, f"the body is not JSON: {error}") from None
        if not isinstance(payload, dict):
            raise CallRefused(400, "the body must be a JSON object {event, data}")
        self._check_signature(request, payload)
        event, data = payload.get("event"), payload.get("data")
        if event != "room.call":
            return JSONResponse({"ok": True})  # room.started, room.ended: nothing to do
        fields = data if isinstance(data, dict) else {}
        missing = [k for k in ("room_name", "room_url", "token") if not isinstance(fields.get(k), str)]
        if missing:
            raise CallRefused(400, f"room.call data needs {', '.join(missing)} (strings)")
        try:
            room = RoomClient.for_room_url(fields["room_url"], fields["token"])
        except ValueError as error:
            raise CallRefused(400, str(error)) from None
        task = asyncio.create_task(self._answer(service_path, room), name=f"call-{service_path.path}")
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)
        return JSONResponse({"ok": True})

    def _check_signature(self, request: Request, payload: dict[str, Any]) -> None:
        """With a ``webhook_secret``: ``Meshagent-Signature: Bearer <HS256 JWT {sha256}>``
        over the body as ``json.dumps`` writes it, as the MeshAgent host checks."""
        if self.webhook_secret is None:
            return
        header = request.headers.get("meshagent-signature", "")
        if not header.startswith("Bearer "):
            raise CallRefused(401, "missing 'Meshagent-Signature: Bearer <jwt>' header")
        try:
            claims = jwt.decode(header.removeprefix("Bearer "), self.webhook_secret,
                                algorithms=["HS256"])
        except jwt.PyJWTError as error:
            raise CallRefused(401, f"signature is not valid: {error}") from None
        digest = hashlib.sha256(json.dumps(payload).encode()).hexdigest()
        if claims.get("sha256") != digest:
            raise CallRefused(401, "signature does not match the body")

    # ------------------------------------------------------------ an agent in a room

    async def _answer(self, service_path: ServicePath, room: RoomClient) -> None:
        """Join the room, run one agent there until dismissed or disconnected, stop it."""
        try:
            async with room:
                dismissed = asyncio.Event()

                def on_message(_type: str, header: dict[str, Any], _payload: bytes) -> None:
                    if header.get("type") == "dismiss":
                        dismissed.set()

                room.on("messaging.send", on_message)
                agent = service_path.cls()
                logger.info("%s answering the call into room %s", room.participant_name, room.room_name)
                await agent.start(room=room)
                try:
                    await _first_of(room.wait_closed(), dismissed.wait(), self._stopping.wait())
                finally:
                    await agent.stop()
        except Exception:
            logger.exception("the agent at %s failed in room %s", service_path.path, room.room_name)


async def _first_of(*waits: Any) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _port_from_env(text: str | None) -> int:
    if not text:
        return DEFAULT_PORT
    try:
        port = int(text)
    except ValueError:
        raise ValueError(f"MESHAGENT_PORT must be a port number, not {text!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"MESHAGENT_PORT must be between 0 and 65535, not {port}")
    return port
