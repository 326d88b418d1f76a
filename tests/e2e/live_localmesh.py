"""A real ``localmesh serve`` process and the real CLIs around it, for end-to-end tests.

Everything runs as separate processes on 127.0.0.1, in a temporary data dir and ``HOME``,
with the environment ``localmesh env`` prints (as a user's ``eval "$(localmesh env)"``).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from localmesh_serve import BIN, Served, serve
from localmesh_serve import run as run  # the tests here import it from this module

LOCALMESH = str(BIN / "localmesh")

MESHAGENT = str(BIN / "meshagent")
LONG_POLL_WINDOW = "2"  # seconds: CLI receives on an empty queue end soon


class LiveServer(Served):
    """A served ``localmesh serve`` with its files under ``root``, and a user's shell around it."""

    root: Path

    @property
    def env(self) -> dict[str, str]:
        """What ``localmesh env`` exports for it."""
        return self.exports

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
    async with serve("--long-poll-window", LONG_POLL_WINDOW, data_dir=root / "data",
                     log=root / "serve.log", env={**os.environ, "HOME": str(root)},
                     kind=LiveServer) as server:
        server.root = root
        yield server


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
