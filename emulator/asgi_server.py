"""Serve an ASGI app with uvicorn inside the running event loop, on a port of our choosing."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn


class InProcessServer:
    """uvicorn's ``startup`` + ``main_loop`` rather than ``serve()``, which would take over the
    process's signals; a failure to bind is an ``OSError``, not uvicorn's process exit."""

    def __init__(self, app: Any, host: str, port: int, **config: Any) -> None:
        self.host = host
        self.port = port
        self._config = uvicorn.Config(app, host=host, port=port, lifespan="off", **config)
        self._server: uvicorn.Server | None = None
        self._main_loop: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._config.load()
        server = uvicorn.Server(self._config)
        server.lifespan = self._config.lifespan_class(self._config)
        try:
            await server.startup()
            listening = server.started
        except SystemExit:
            listening = False
        if not listening:
            raise OSError(f"could not listen on {self.host}:{self.port} (is it in use?)")
        self._server = server
        self.port = server.servers[0].sockets[0].getsockname()[1]
        self._main_loop = asyncio.create_task(server.main_loop())

    async def stop(self) -> None:
        if self._server is not None and self._main_loop is not None:
            self._server.should_exit = True
            await self._main_loop
            await self._server.shutdown()
            self._main_loop = None
