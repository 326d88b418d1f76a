"""A real ``localmesh serve`` process, and the real ``meshagent`` CLI pointed at it."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import localmesh_serve
from localmesh_serve import BIN
from meshagent.api import ApiScope, ParticipantToken, RoomClient
from meshagent.api.websocket_protocol import WebSocketClientProtocol

MESHAGENT = str(BIN / "meshagent")
SHUTDOWN = 20.0
CLI_TIMEOUT = 90.0  # the CLI imports a lot before it does anything
WORK = 90.0  # a deployed service starts, joins, takes the task and saves the file


class Served(localmesh_serve.Served):
    """A served ``localmesh serve``, and a user's shell around it (``home``, ``env``)."""

    home: Path

    @property
    def env(self) -> dict[str, str]:
        """PATH, an empty HOME (no ~/.meshagent profile) and what ``localmesh env`` exports."""
        env = {"PATH": f"{BIN}:{os.environ.get('PATH', '')}", "HOME": str(self.home),
               "LANG": "C.UTF-8", **self.exports}
        assert "MESHAGENT_TOKEN" not in env
        return env

    async def run(self, *argv: str, extra_env: dict[str, str] | None = None,
                  stdout: Path | None = None) -> tuple[int, str]:
        """A command (``meshagent ...`` or ``localmesh ...``) with the env of ``localmesh env``."""
        return await localmesh_serve.run({**self.env, **(extra_env or {})}, *argv, cwd=self.home,
                                         timeout=CLI_TIMEOUT, stdout=stdout)

    def room(self, name: str) -> RoomClient:
        """The real SDK's RoomClient in ``name``, with a token it signs with the API key."""
        token = ParticipantToken(name="checker")
        token.add_room_grant(name)
        token.add_role_grant("user")
        token.add_api_grant(ApiScope.agent_default())
        jwt = token.to_jwt(api_key=self.env["MESHAGENT_API_KEY"])
        protocol = WebSocketClientProtocol(url=f"ws://127.0.0.1:{self.port}/rooms/{name}", token=jwt)
        return RoomClient(protocol_factory=protocol.create_factory())


@asynccontextmanager
async def serve(data_dir: Path, *extra: str, port: int = 0) -> AsyncIterator[Served]:
    home = data_dir.parent / "home"
    home.mkdir(exist_ok=True)
    log = data_dir.parent / f"serve-{time.monotonic_ns()}.log"
    async with localmesh_serve.serve(*extra, data_dir=data_dir, log=log, port=port,
                                     env={**os.environ, "HOME": str(home)},
                                     stop_timeout=SHUTDOWN, kind=Served) as served:
        served.home = home
        yield served


async def until_file(served: Served, room: str, path: str, timeout: float = WORK) -> str:
    """Wait (bounded) until ``path`` exists in ``room``'s storage; its text."""
    async with served.room(room) as client, asyncio.timeout(timeout):
        while not await client.storage.exists(path=path):
            await asyncio.sleep(0.2)
        return (await client.storage.download(path=path)).data.decode()


async def service_state(served: Served, room: str, name: str) -> dict[str, Any] | None:
    """The room's view of a service (the services toolkit), as the real SDK reads it."""
    from meshagent.api.room_server_client import ServicesClient

    async with served.room(room) as client:
        result = await ServicesClient(room=client).list()
    for spec in result.services:
        if spec.metadata.name == name:
            state = result.service_states.get(spec.id or "")
            return state.model_dump() if state else None
    return None


async def until_running(served: Served, room: str, name: str, timeout: float = WORK) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            state = await service_state(served, room, name)
            if state and state["state"] == "running":
                return state
            await asyncio.sleep(0.2)
