"""``RoomServer``: the emulator served by uvicorn on 127.0.0.1, in this process.

    async with RoomServer() as server:
        server.url, server.api_key, server.project_id, server.mint_token(...)
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import uvicorn
import websockets.http11

from localmesh.emulator.app import create_app
from localmesh.emulator.connections import ConnectionGuard
from localmesh.emulator.faults import Faults
from localmesh.emulator.limits import Limits
from localmesh.emulator.llm import LLMHub
from localmesh.emulator.queues import DEFAULT_LONG_POLL_WINDOW
from localmesh.emulator.services import RunnerSettings, Services
from localmesh.emulator.state import EmulatorState, Settings
from localmesh.emulator.storage import DEFAULT_MAX_FILE_BYTES
from localmesh.emulator.url_token import install_log_redaction
from localmesh.protocol.llm_urls import llm_environment

from .clock import Clock, WallClock


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
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    ) -> None:
        self.host = host
        self.port = port
        limits = limits or Limits()
        if max_message_bytes is not None:
            limits = limits.replace(max_message_bytes=max_message_bytes)
        self.settings = Settings(
            data_dir=None if data_dir is None else Path(data_dir),
            long_poll_window=long_poll_window,
            llm_script=None if llm_script is None else Path(llm_script),
            clock=clock or WallClock(),
            mount_images={image: Path(folder) for image, folder in (mount_images or {}).items()},
            services=service_settings or RunnerSettings(),
            limits=limits,
            max_file_bytes=max_file_bytes,
        )
        self._log_level = log_level
        self.compression = compression
        self._state: EmulatorState | None = None
        self._uvicorn: uvicorn.Server | None = None
        self._main_loop: asyncio.Task[None] | None = None
        self._guard: ConnectionGuard | None = None

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        limits = self.settings.limits
        self._state = await EmulatorState.open(self.settings)
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
        # startup + main_loop rather than serve(): serve() takes over the process's signals.
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
            raise OSError(f"could not listen on {self.host}:{self.port} (is it in use?)")
        self.port = self._uvicorn.servers[0].sockets[0].getsockname()[1]
        self._state.public_url = self.url
        self._guard.start()
        self._main_loop = asyncio.create_task(self._uvicorn.main_loop())
        await self._state.services.start()  # room services run from the start

    async def stop(self) -> None:
        """Stop serving: clients get a close frame; any still connected after the grace
        period (``Limits.shutdown_grace``), such as one that stopped reading, are cut."""
        if self._state is not None:
            self._state.stopping.set()
            # Services first, while their room connections can still close cleanly.
            await self._state.services.stop()
        if self._uvicorn is not None and self._main_loop is not None:
            self._uvicorn.should_exit = True
            await self._main_loop
            cutter = asyncio.get_running_loop().call_later(
                self.settings.limits.shutdown_grace, self._cut_all)
            try:
                await self._uvicorn.shutdown()
            finally:
                cutter.cancel()
            self._main_loop = None
        if self._guard is not None:
            self._guard.abort_all()
            await self._guard.stop()
        if self._state is not None:
            await self._state.close()
            self._state = None

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

    def participants(self, room: str) -> list[dict[str, Any]]:
        return self.state.rooms.participants(room)

    def developer_logs(self, room: str) -> list[Any]:
        return self.state.rooms.developer_logs(room)

    async def drop_connections(self, room: str | None = None) -> int:
        """Abort room TCP connections with no close frame, as a network failure would."""
        assert self._uvicorn is not None
        dropped = 0
        for connection in list(self._uvicorn.server_state.connections):
            scope = getattr(connection, "scope", None) or {}
            path = scope.get("path", "")
            if scope.get("type") != "websocket" or not path.startswith("/rooms/"):
                continue
            if room is not None and path != f"/rooms/{room}":
                continue
            connection.transport.abort()
            dropped += 1
        return dropped


def environment(url: str, api_key: str, project_id: str) -> dict[str, str]:
    """What the real SDK and CLI (and plain LLM clients) read to reach the server at ``url``."""
    return {
        "MESHAGENT_API_URL": url,
        # An active CLI profile's URL wins over MESHAGENT_API_URL for rooms; this does not.
        "MESHAGENT_ROOM_URL": url.replace("http", "ws", 1),
        "MESHAGENT_API_KEY": api_key,
        "MESHAGENT_PROJECT_ID": project_id,
        "MESHAGENT_DISABLE_VERSION_CHECK": "1",
        # The LLM proxy's providers, as `meshagent room connect` exports them: the SDK derives
        # the same URLs from MESHAGENT_API_URL, but some of its paths (grok-* models under
        # `meshagent process`) and plain OpenAI/Anthropic clients read only these.
        **llm_environment(url),
    }
