"""A real ``localmesh serve`` process and the real CLIs around it, for end-to-end tests.

Everything runs as separate processes on 127.0.0.1, in a temporary data dir and ``HOME``,
with the environment ``localmesh env`` prints (as a user's ``eval "$(localmesh env)"``).
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent
LOCALMESH = str(BIN / "localmesh")
MESHAGENT = str(BIN / "meshagent")
STARTUP = 30.0  # seconds for `localmesh serve` to answer /healthz
CLI_TIMEOUT = 60.0  # the meshagent CLI imports a lot before it does anything
STOP = 15.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    def __init__(self, process: asyncio.subprocess.Process, port: int, root: Path, log: Path) -> None:
        self.process = process
        self.port = port
        self.root = root
        self.log = log
        self.env: dict[str, str] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def cli_env(self, **extra: str) -> dict[str, str]:
        """A clean environment: the venv first on PATH, an empty HOME, `localmesh env`."""
        home = self.root / "home"
        home.mkdir(exist_ok=True)
        return {
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "COLUMNS": "200",
            **self.env,
            **extra,
        }


@asynccontextmanager
async def live_server(root: Path) -> AsyncIterator[LiveServer]:
    """``localmesh serve`` on a free port with its data under ``root``; SIGTERM at the end."""
    port = free_port()
    log = root / f"serve-{port}.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            LOCALMESH, "serve", "--port", str(port), "--data-dir", str(root / "data"),
            "--long-poll-window", "2", stdout=out, stderr=out,
            env={**os.environ, "HOME": str(root)},
        )
    server = LiveServer(process, port, root, log)
    try:
        await _wait_healthy(server)
        server.env = await _localmesh_env(server)
        yield server
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(STOP):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()


async def _wait_healthy(server: LiveServer) -> None:
    deadline = time.monotonic() + STARTUP
    async with httpx.AsyncClient(timeout=2.0) as http:
        while True:
            if server.process.returncode is not None:
                raise AssertionError(f"localmesh serve exited early:\n{server.log.read_text()}")
            try:
                if (await http.get(f"{server.url}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"localmesh serve not healthy in {STARTUP}s:\n{server.log.read_text()}")
            await asyncio.sleep(0.1)  # polling a health endpoint, bounded by the deadline


async def _localmesh_env(server: LiveServer) -> dict[str, str]:
    code, out = await run(
        {**os.environ}, LOCALMESH, "env", "--port", str(server.port), "--data-dir", str(server.data_dir)
    )
    assert code == 0, out
    env = {}
    for line in out.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = shlex.split(value)[0]
    return env


async def run(env: dict[str, str], *argv: str, cwd: Path | None = None,
              timeout: float = CLI_TIMEOUT) -> tuple[int, str]:
    """Run a command to its end; its exit code and merged output."""
    process = await asyncio.create_subprocess_exec(
        *argv, env=env, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(timeout):
            output, _ = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    return process.returncode or 0, output.decode(errors="replace")


class Watched:
    """A running process whose merged output is collected line by line as it comes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._changed = asyncio.Condition()
        assert process.stdout is not None
        self._reader = asyncio.create_task(self._read(process.stdout))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    async def _read(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            async with self._changed:
                self.lines.append(line.decode(errors="replace").rstrip("\n"))
                self._changed.notify_all()
        async with self._changed:
            self._changed.notify_all()

    async def wait_for_line(self, pattern: str, timeout: float) -> re.Match[str]:
        """The first output line matching ``pattern``; fails if the process ends first."""
        regex = re.compile(pattern)

        def found() -> re.Match[str] | None:
            return next((m for m in map(regex.search, self.lines) if m), None)

        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: found() is not None or self._reader.done())
        except TimeoutError:
            raise AssertionError(f"no line matching {pattern!r} in {timeout}s:\n{self.output}") from None
        match = found()
        assert match is not None, f"ended without a line matching {pattern!r}:\n{self.output}"
        return match

    async def wait(self, timeout: float) -> int:
        async with asyncio.timeout(timeout):
            code = await self.process.wait()
            await self._reader
        return code


@asynccontextmanager
async def watched(env: dict[str, str], *argv: str, cwd: Path | None = None) -> AsyncIterator[Watched]:
    """Start a command in the background; it is killed (with its group) if still running."""
    process = await asyncio.create_subprocess_exec(
        *argv, env=env, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        yield Watched(process)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def children_of(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


async def wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while alive(pid):
        assert time.monotonic() < deadline, f"process {pid} still runs after {timeout}s"
        await asyncio.sleep(0.05)  # polling /proc, bounded by the deadline
