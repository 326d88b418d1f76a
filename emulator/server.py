"""``RoomServer``: the emulator served by uvicorn on 127.0.0.1, in this process.

    async with RoomServer() as server:
        server.url, server.api_key, server.project_id, server.mint_token(...)

uvicorn and FastAPI are imported when a server starts, not with this module: the pytest
plugin imports it in every test run, most of which never start a server.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .clock import Clock, WallClock
from .config import environment
from .faults import Faults
from .limits import Limits
from .llm import LLMHub
from .namespaces import MAIN, room_key
from .project import History, Project, Runner
from .queues import DEFAULT_LONG_POLL_WINDOW
from .services import RunnerSettings, Services
from .snapshot import Snapshot
from .state import EmulatorState, Settings
from .timeline import DEFAULT_TIMELINE_SIZE

if TYPE_CHECKING:
    import uvicorn

    from .connections import ConnectionGuard

__all__ = ["RoomServer", "environment"]


class RoomServer:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        data_dir: str | Path | None = None,
        long_poll_window: float = DEFAULT_LONG_POLL_WINDOW,
        max_message_bytes: int | None = None,
        llm_script: str | Path | None = None,
        log_level: str = "warning",
        compression: bool = False,
        clock: Clock | None = None,
        mount_images: dict[str, str | Path] | None = None,
        service_settings: RunnerSettings | None = None,
        limits: Limits | None = None,
        max_file_bytes: int | None = None,
        timeline_size: int = DEFAULT_TIMELINE_SIZE,
        import_from: str | Path | None = None,
        durable: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        limits = limits or Limits()
        if max_message_bytes is not None:
            limits = limits.replace(max_message_bytes=max_message_bytes)
        if max_file_bytes is not None:  # a shorthand for Limits(max_file_bytes=...)
            limits = limits.replace(max_file_bytes=max_file_bytes)
        self.settings = Settings(
            data_dir=None if data_dir is None else Path(data_dir),
            long_poll_window=long_poll_window,
            llm_script=None if llm_script is None else Path(llm_script),
            clock=clock or WallClock(),
            mount_images={image: Path(folder) for image, folder in (mount_images or {}).items()},
            services=service_settings or RunnerSettings(),
            limits=limits,
            timeline_size=timeline_size,
            durable=durable,
        )
        self.import_from = None if import_from is None else Path(import_from)
        self._log_level = log_level
        self.compression = compression
        self._state: EmulatorState | None = None
        self._uvicorn: uvicorn.Server | None = None
        self._guard: ConnectionGuard | None = None
        self._project: Project | None = None

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        import uvicorn
        import websockets.http11

        from .app import create_app
        from .connections import ConnectionGuard
        from .url_token import install_log_redaction

        limits = self.settings.limits
        # Read the snapshot before anything holds the process open: a bad one fails first.
        snapshot = None if self.import_from is None else Snapshot.read(self.import_from)
        self._state = await EmulatorState.open(self.settings, snapshot)
        self._guard = ConnectionGuard(limits)
        self._state.connections = self._guard
        app = create_app(self._state)
        # The websocket handshake parser refuses long header lines with 431, which the SDK
        # retries for ever; let long tokens through to the app, which answers 403 + reason.
        # (The connection guard refuses longer request heads itself, with a 403.)
        parser_limit = 2 * limits.max_header_bytes
        websockets.http11.MAX_LINE_LENGTH = max(websockets.http11.MAX_LINE_LENGTH, parser_limit)
        config = uvicorn.Config(
            app, host=self.host, port=self.port, lifespan="off", log_level=self._log_level,
            **self._guard.protocols(),
            # Pings find clients that are gone or stopped reading; the SDK answers them.
            ws_ping_interval=limits.ping_interval, ws_ping_timeout=limits.ping_timeout,
            # The largest frame anyone may send (LLM requests over a websocket); room
            # sockets get a much smaller per-connection limit (max_frame_bytes).
            ws_max_size=max(limits.llm_max_body_bytes, limits.max_frame_bytes),
            h11_max_incomplete_event_size=parser_limit,
            timeout_graceful_shutdown=limits.shutdown_grace,
            # permessage-deflate is off by default: on 127.0.0.1 it only costs CPU (a 50 MB
            # file took ~3x longer). The SDK offers it and works with either answer.
            ws_per_message_deflate=self.compression,
        )
        config.load()  # (re)configures uvicorn's loggers; the token filter goes on after it
        install_log_redaction()
        self._uvicorn = uvicorn.Server(config)
        self._uvicorn.lifespan = config.lifespan_class(config)
        # startup() alone, not serve(): serve() takes over the process's signals, and its
        # main loop only ticks every 0.1 s to notice a stop, which a test pays every time.
        try:
            # uvicorn exits the process (SystemExit) when it cannot start; turn that and a
            # failed bind into an error the caller can handle, and close the store so no
            # thread keeps the process alive.
            await self._uvicorn.startup(sockets=[self._guard.listener(self.host, self.port)])
            listening = self._uvicorn.started
        except (SystemExit, OSError):
            listening = False
        if not listening:
            await self._state.close()
            self._state = None
            self._uvicorn = None
            raise OSError(f"could not listen on {self.host}:{self.port} (is it in use?)")
        await self._uvicorn.on_tick(0)  # the default response headers
        self.port = self._uvicorn.servers[0].sockets[0].getsockname()[1]
        self._state.public_url = self.url
        self._guard.start()
        self._project = Project(self, self._state.api_key, MAIN)
        await self._state.services.start()  # room services run from the start

    async def stop(self) -> None:
        """Stop serving: services stop first, then the listener closes, every connection is
        told to close, and any still open after the grace period (``Limits.shutdown_grace``),
        such as one that stopped reading, is cut; then SQLite closes. Takes about a
        millisecond when nothing is connected (uvicorn's own shutdown sleeps 0.1 s at least)."""
        state = self._state
        if state is not None:
            state.stopping.set()
            # Services first, while their room connections can still close cleanly.
            await state.services.stop()
        server, self._uvicorn = self._uvicorn, None
        if server is not None:
            grace = self.settings.limits.shutdown_grace
            server.should_exit = True
            for listener in server.servers:
                listener.close()
            for connection in list(server.server_state.connections):
                connection.shutdown()
            tasks = set(server.server_state.tasks)
            if tasks:
                await asyncio.wait(tasks, timeout=grace)
            self._cut_all()
            for connection in list(server.server_state.connections):
                connection.transport.abort()
            for task in list(server.server_state.tasks):
                task.cancel()
            for listener in server.servers:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(grace):
                        await listener.wait_closed()
        if self._guard is not None:
            self._guard.abort_all()
            await self._guard.stop()
        if state is not None:
            await state.close()
            self._state = None
            self._project = None

    def force_stop(self) -> None:
        """A second signal: cut every connection now and stop waiting for anything."""
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
            self._uvicorn.force_exit = True
        self._cut_all()

    def _cut_all(self) -> None:
        if self._guard is not None:
            self._guard.abort_all()

    async def __aenter__(self) -> RoomServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------ what clients need

    @property
    def state(self) -> EmulatorState:
        if self._state is None:
            raise RuntimeError("the RoomServer is not running")
        return self._state

    @property
    def running(self) -> bool:
        return self._state is not None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_key(self) -> str:
        return self.state.api_key.text

    @property
    def project_id(self) -> str:
        return self.state.api_key.project_id

    def room_url(self, room: str) -> str:
        return f"ws://{self.host}:{self.port}/rooms/{room}"

    def env(self) -> dict[str, str]:
        """What the real SDK and CLI need to talk to this server."""
        return environment(self.url, self.api_key, self.project_id)

    def mint_token(
        self, *, room: str, name: str, role: str = "agent", api: dict[str, Any] | None = None,
        expires_in: timedelta | None = None,
    ) -> str:
        return self.state.mint_token(room=room, name=name, role=role, api=api, expires_in=expires_in)

    # ------------------------------------------------------------ projects

    @property
    def project(self) -> Project:
        """The main project: its rooms are what ``mint_token``, ``env()`` and the CLI reach."""
        if self._project is None:
            raise RuntimeError("the RoomServer is not running")
        return self._project

    def add_project(self, runner: Runner | None = None) -> Project:
        """A temporary project with a key of its own: its rooms share no state with any
        other project's rooms of the same name. ``await project.close()`` ends it."""
        key, namespace = self.state.keyring.new_project()
        return Project(self, key, namespace, runner or self.project.runner, temporary=True)

    # ------------------------------------------------------------ test hooks

    @property
    def clock(self) -> Clock:
        """The clock the server's timers read (a ``VirtualClock`` in tests that ask for one)."""
        return self.settings.clock

    @property
    def long_poll_window(self) -> float:
        return self.state.queues.long_poll_window

    @long_poll_window.setter
    def long_poll_window(self, seconds: float) -> None:
        self.state.queues.long_poll_window = seconds

    @property
    def llm(self) -> LLMHub:
        """The scripted LLM: ``server.llm.set_script(room, script)``, ``.transcript(room)``."""
        return self.state.llm

    @property
    def services(self) -> Services:
        """Stored services and their processes: ``server.services.supervisor.state_of(room, id)``."""
        return self.state.services

    @property
    def faults(self) -> Faults:
        """Failure injection, aimed and counted: ``server.faults.add("error", toolkit="queues",
        tool="receive", participant="worker", nth=2)`` returns a handle with ``.fired``."""
        return self.state.faults

    @property
    def history(self) -> History:
        """The main project's timeline: ``server.history.calls("storage", "upload")``."""
        return self.project.history

    def participants(self, room: str) -> list[dict[str, Any]]:
        return self.state.rooms.participants(room)

    def developer_logs(self, room: str) -> list[Any]:
        return self.state.rooms.developer_logs(room)

    async def reset(self, room: str | None = None) -> None:
        """Forget one room of the main project, or everything the server holds (every
        project): queues, messages, files, faults, LLM scripts and transcripts, timeline.
        Connections, keys and settings stay; no restart."""
        if room is None:
            await self.state.reset(lambda key: True)
        else:
            await self.project.reset(room)

    async def export(self, directory: str | Path) -> Path:
        """Write the main project's rooms and keys to ``directory`` (see docs/snapshots.md)."""
        return await self.project.export(directory)

    async def drop_connections(self, room: str | None = None) -> int:
        """Abort room TCP connections with no close frame, as a network failure would."""
        if room is None:
            return await self.abort_connections(lambda key: True)
        key = room_key(MAIN, room)
        return await self.abort_connections(lambda k: k == key)

    async def abort_connections(self, rooms: Callable[[str], bool]) -> int:
        """Abort the TCP connections of the room sessions whose room key ``rooms`` picks."""
        assert self._uvicorn is not None
        dropped = 0
        for connection in list(self._uvicorn.server_state.connections):
            scope = getattr(connection, "scope", None) or {}
            key = scope.get("localmesh.room")
            if scope.get("type") != "websocket" or key is None or not rooms(key):
                continue
            connection.transport.abort()
            dropped += 1
        return dropped
