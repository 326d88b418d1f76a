"""One way for tests to run a real ``localmesh serve`` process, and commands around it.

``async with serve(data_dir=..., log=...) as served``: the process is listening (its
"serving on" line is out and ``/healthz`` answers), ``served.url``/``port``/``exports`` say
where it is and how a user's SDK or CLI reaches it. At the end it gets SIGTERM, and SIGKILL
if it has not stopped within ``stop_timeout``: no process outlives its test.
Everything it prints goes to ``log`` (a file, so a full pipe can never stall it).
"""

from __future__ import annotations

import asyncio
import re
import resource
import shlex
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, nullcontext
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from localmesh.emulator.config import environment

BIN = Path(sys.executable).parent
# The console script next to this interpreter; its entry point where it is not installed.
LOCALMESH_COMMAND = ([str(BIN / "localmesh")] if (BIN / "localmesh").exists()
                     else [sys.executable, "-c", "from localmesh.cli import main; main()"])
STARTUP = 30.0  # seconds to import and listen, on a loaded 2-core machine
STOP = 15.0  # seconds SIGTERM may take before the process is killed
RUN_TIMEOUT = 60.0  # a command run to its end (the meshagent CLI imports a lot first)
# What an in-memory server's start banner exports (it has no data dir for `localmesh env`).
BANNER_EXPORTS = frozenset(environment("http://127.0.0.1:0", "", ""))
SERVING_ON = re.compile(r"serving on (http://\S+)")


def free_port() -> int:
    """A port free right now, for a test that must know it before the server starts
    (a restart on the same port); otherwise pass port 0 and read ``served.port``."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def parse_exports(text: str) -> dict[str, str]:
    """The ``export NAME=value`` lines of ``text`` (shell-quoted values unquoted)."""
    found = {}
    for line in text.splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            found[name] = shlex.split(value)[0] if value else ""
    return found


class Served:
    """A running ``localmesh serve``."""

    def __init__(self, process: asyncio.subprocess.Process, url: str, data_dir: Path | None,
                 log: Path, stop_timeout: float) -> None:
        self.process = process
        self.url = url
        self.data_dir = data_dir
        self.log = log
        self.stop_timeout = stop_timeout
        self.exports: dict[str, str] = {}  # MESHAGENT_API_URL, MESHAGENT_API_KEY, ...

    @property
    def port(self) -> int:
        port = urlsplit(self.url).port
        assert port is not None, self.url
        return port

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def stop(self, timeout: float | None = None) -> int:
        """SIGTERM, and its exit code; a failure (after SIGKILL) if it takes over ``timeout``."""
        timeout = self.stop_timeout if timeout is None else timeout
        if not await self._terminate(timeout):
            raise AssertionError(f"localmesh serve did not stop within {timeout:g} s of SIGTERM:\n"
                                 f"{self.output()}")
        assert self.process.returncode is not None
        return self.process.returncode

    async def kill(self) -> int:
        if self.process.returncode is None:
            self.process.kill()
        return await self.process.wait()

    async def _terminate(self, timeout: float) -> bool:
        """SIGTERM, then SIGKILL after ``timeout``; False when it had to be killed."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(timeout):
                await self.process.wait()
            return True
        except TimeoutError:
            await self.kill()
            return False


@asynccontextmanager
async def serve[S: Served](*args: str, data_dir: Path | None, log: Path, port: int = 0,
                           env: Mapping[str, str] | None = None, cwd: Path | None = None,
                           nofile: int | None = None, startup: float = STARTUP,
                           stop_timeout: float = STOP, kind: type[S] = Served) -> AsyncIterator[S]:
    """``localmesh serve --port PORT *args`` with its data in ``data_dir`` (None: ``--in-memory``).

    ``env`` is the process's whole environment (None: this one's); ``nofile`` caps its open
    files (RLIMIT_NOFILE); ``kind``, a subclass of ``Served`` a test folder adds its helpers to.
    ``served.exports`` comes from the banner when in memory, else from ``localmesh env`` as a
    user would run it.
    """
    where = ["--in-memory"] if data_dir is None else ["--data-dir", str(data_dir)]

    def limit_files() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            *LOCALMESH_COMMAND, "serve", "--port", str(port), *where, *args,
            stdout=out, stderr=out, env=None if env is None else dict(env), cwd=cwd,
            preexec_fn=limit_files if nofile is not None else None,
        )
    served = kind(process, "", data_dir, log, stop_timeout)
    try:
        deadline = time.monotonic() + startup
        served.url = await _banner(served, deadline)
        await _wait_healthy(served, deadline)
        served.exports = (parse_exports(served.output()) if data_dir is None
                          else await localmesh_env(data_dir, port=served.port))
        yield served
    finally:
        await served._terminate(stop_timeout)


async def _banner(served: Served, deadline: float) -> str:
    """The URL of the "serving on" line, once the banner is out (with its exports if in memory)."""
    while True:
        text = served.output()
        found = SERVING_ON.search(text)
        if found and (served.data_dir is not None or BANNER_EXPORTS <= parse_exports(text).keys()):
            return found.group(1)
        if served.process.returncode is not None:
            raise AssertionError(f"localmesh serve exited early ({served.process.returncode}):\n{text}")
        if time.monotonic() > deadline:
            raise AssertionError(f"localmesh serve did not start in time:\n{text}")
        await asyncio.sleep(0.05)  # polling the log of a process we do not control, bounded


async def _wait_healthy(served: Served, deadline: float) -> None:
    async with httpx.AsyncClient(timeout=2.0) as http:
        while True:
            if served.process.returncode is not None:
                raise AssertionError(f"localmesh serve exited early:\n{served.output()}")
            try:
                if (await http.get(f"{served.url}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"localmesh serve not healthy in time:\n{served.output()}")
            await asyncio.sleep(0.1)  # polling a health endpoint, bounded by the deadline


async def localmesh_env(data_dir: Path, *, port: int | None = None) -> dict[str, str]:
    """What ``localmesh env`` exports for ``data_dir`` (as a user's ``eval "$(localmesh env)"``)."""
    argv = [*LOCALMESH_COMMAND, "env", "--data-dir", str(data_dir)]
    if port is not None:
        argv += ["--port", str(port)]
    code, output = await run(None, *argv)
    assert code == 0, output
    exports = parse_exports(output)
    assert "MESHAGENT_API_KEY" in exports, f"no MESHAGENT_API_KEY in `localmesh env`:\n{output}"
    return exports


async def run(env: Mapping[str, str] | None, *argv: str, cwd: Path | None = None,
              timeout: float = RUN_TIMEOUT, stdout: Path | None = None) -> tuple[int, str]:
    """Run a command to its end (killed after ``timeout``); its exit code and merged output
    (only its stderr when ``stdout`` names a file for its standard output)."""
    with stdout.open("wb") if stdout else nullcontext() as out:
        process = await asyncio.create_subprocess_exec(
            *argv, env=None if env is None else dict(env), cwd=cwd,
            stdout=out or asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE if out else asyncio.subprocess.STDOUT,
        )
        try:
            async with asyncio.timeout(timeout):
                output, errors = await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
    text = (output or b"").decode(errors="replace") + (errors or b"").decode(errors="replace")
    return process.returncode or 0, text
