"""A real ``localmesh serve`` process, and the real ``meshagent`` CLI pointed at it."""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from meshagent.api import ApiScope, ParticipantToken, RoomClient
from meshagent.api.websocket_protocol import WebSocketClientProtocol

BIN = Path(sys.executable).parent
LOCALMESH = str(BIN / "localmesh")
MESHAGENT = str(BIN / "meshagent")
STARTUP = 30.0
SHUTDOWN = 20.0
CLI_TIMEOUT = 90.0  # the CLI imports a lot before it does anything
WORK = 90.0  # a deployed service starts, joins, takes the task and saves the file


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Served:
    def __init__(self, process: asyncio.subprocess.Process, port: int, data_dir: Path, log: Path,
                 home: Path) -> None:
        self.process = process
        self.port = port
        self.data_dir = data_dir
        self.log = log
        self.home = home
        self.env: dict[str, str] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(SHUTDOWN):
            return await self.process.wait()

    async def kill(self) -> None:
        self.process.kill()
        await self.process.wait()

    async def run(self, *argv: str, extra_env: dict[str, str] | None = None,
                  stdout: Path | None = None) -> tuple[int, str]:
        """A command (``meshagent ...`` or ``localmesh ...``) with the env of ``localmesh env``."""
        env = {**self.env, **(extra_env or {})}
        out = stdout.open("wb") if stdout else None
        try:
            process = await asyncio.create_subprocess_exec(
                *argv, env=env, cwd=self.home, stdout=out or asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT if out is None else asyncio.subprocess.PIPE)
            try:
                async with asyncio.timeout(CLI_TIMEOUT):
                    output, errors = await process.communicate()
            except TimeoutError:
                process.kill()
                await process.wait()
                raise
        finally:
            if out:
                out.close()
        text = (output or b"").decode(errors="replace") + (errors or b"").decode(errors="replace")
        return process.returncode or 0, text

    def room(self, name: str) -> RoomClient:
        """The real SDK's RoomClient in ``name``, with a token it signs with the API key."""
        token = ParticipantToken(name="checker")
        token.add_room_grant(name)
        token.add_role_grant("user")
        token.add_api_grant(ApiScope.agent_default())
        jwt = token.to_jwt(api_key=self.env["MESHAGENT_API_KEY"])
        protocol = WebSocketClientProtocol(url=f"ws://127.0.0.1:{self.port}/rooms/{name}", token=jwt)
        return RoomClient(protocol_factory=protocol.create_factory())


async def localmesh_env(port: int, data_dir: Path, home: Path) -> dict[str, str]:
    """PATH, an empty HOME (no ~/.meshagent profile) and what ``localmesh env`` exports."""
    process = await asyncio.create_subprocess_exec(
        LOCALMESH, "env", "--port", str(port), "--data-dir", str(data_dir),
        stdout=asyncio.subprocess.PIPE)
    async with asyncio.timeout(CLI_TIMEOUT):
        output, _ = await process.communicate()
    env = {"PATH": f"{BIN}:{os.environ.get('PATH', '')}", "HOME": str(home), "LANG": "C.UTF-8"}
    for line in output.decode().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = shlex.split(value)[0]
    assert "MESHAGENT_TOKEN" not in env
    return env


@asynccontextmanager
async def serve(data_dir: Path, *extra: str, port: int | None = None) -> AsyncIterator[Served]:
    port = port or free_port()
    home = data_dir.parent / "home"
    home.mkdir(exist_ok=True)
    log = data_dir.parent / f"serve-{port}-{time.monotonic_ns()}.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            LOCALMESH, "serve", "--port", str(port), "--data-dir", str(data_dir), *extra,
            stdout=out, stderr=out, env={**os.environ, "HOME": str(home)})
    served = Served(process, port, data_dir, log, home)
    try:
        await _wait_healthy(served)
        served.env = await localmesh_env(port, data_dir, home)
        yield served
    finally:
        if process.returncode is None:
            await served.stop()


async def _wait_healthy(served: Served) -> None:
    async with httpx.AsyncClient(timeout=2.0) as http, asyncio.timeout(STARTUP):
        while True:
            if served.process.returncode is not None:
                raise AssertionError(f"localmesh serve exited early:\n{served.log.read_text()}")
            try:
                if (await http.get(f"{served.url}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)


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
