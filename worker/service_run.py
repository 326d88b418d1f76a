"""``localmesh service run CMD --room R``: run a service program locally and call it in.

What ``meshagent service run`` does (start the program with ``MESHAGENT_PORT``, read its
``/.well-known/meshagent-service.json``, POST a ``room.call`` webhook to each endpoint with
a token for the endpoint's identity), without its traps:

* a program that dies before it serves its spec is reported at once, with its exit code
  (the real CLI keeps retrying for ~105 s);
* Ctrl-C and SIGTERM are forwarded to the program's process group, a second one kills it,
  and whatever is left after a grace period is killed (the real CLI ignores Ctrl-C);
* the program's output is printed as it comes (``PYTHONUNBUFFERED=1``), our own lines go
  to stderr prefixed ``localmesh:``;
* ``.py`` programs run with the interpreter localmesh runs with, not whatever ``python3``
  is first on ``PATH``; each endpoint joins under its own identity even if
  ``MESHAGENT_TOKEN`` is set; the exit code is the program's.

No child outlives the command: the program runs in its own process group, which is
signalled on every way out, and on Linux it gets SIGTERM if this process dies (kill -9).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shlex
import signal
import socket
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from localmesh.protocol.llm_urls import llm_environment

from .config import ServerTarget
from .room import room_websocket_url

WELL_KNOWN_PATH = "/.well-known/meshagent-service.json"
SPEC_POLL_INTERVAL = 0.05  # seconds between spec reads while the program starts
TAIL_LINES = 20  # output lines quoted when the program dies early

Echo = Callable[[str], None]


@dataclass
class RunOptions:
    command: str
    room: str
    port: int | None = None
    startup_timeout: float = 60.0  # seconds the program has to serve its spec
    grace: float = 10.0  # seconds between the forwarded signal and SIGKILL


class ServiceRunError(Exception):
    """The run cannot go on; the message says why. ``code`` is the exit code to use."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def program_argv(command: str) -> list[str]:
    """The argv for COMMAND, as ``meshagent service run`` builds it: a ``.py`` file runs
    with Python (ours), a ``.dart`` file with ``dart run``, anything else as a shell-style
    line. Unlike the real CLI, arguments may follow the file (``main.py --debug``)."""
    parts = shlex.split(command)
    if not parts:
        raise ServiceRunError("the command is empty", 2)
    if parts[0].endswith(".py"):
        return [sys.executable, *parts]
    if parts[0].endswith(".dart"):
        return ["dart", "run", *parts]
    return parts


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def program_env(options: RunOptions, target: ServerTarget, port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "MESHAGENT_PORT": str(port),
        "MESHAGENT_ROOM": options.room,
        "MESHAGENT_API_URL": target.api_url,
        "MESHAGENT_API_KEY": target.api_key.text,
        "MESHAGENT_PROJECT_ID": target.api_key.project_id,
        "PYTHONUNBUFFERED": "1",  # output appears as it is written, not at exit
        # The LLM providers, as `meshagent room connect` points its child programs at them.
        **llm_environment(target.api_url),
    })
    env.setdefault("MESHAGENT_HOST", "127.0.0.1")  # reachable here, not from the network
    return env


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1  # noqa: N806 - the prctl constant's name
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class ServiceRun:
    """One run: the program, its output, the calls, and the way it ends."""

    def __init__(self, options: RunOptions, target: ServerTarget, *, out: Echo, err: Echo) -> None:
        self.options = options
        self.target = target
        self.port = options.port or free_port()
        self._out = out
        self._err = err
        self._tail: deque[str] = deque(maxlen=TAIL_LINES)
        self._process: asyncio.subprocess.Process | None = None
        self._stop_signal: int | None = None
        self._killer: asyncio.Task[None] | None = None
        self._pump: asyncio.Task[None] | None = None

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            await self._spawn()
            assert self._process is not None and self._process.stdout is not None
            self._pump = asyncio.create_task(self._copy_output(self._process.stdout))
            exited = asyncio.ensure_future(self._process.wait())
            if self._stop_signal is None:
                spec = await self._spec_or_exit(exited)
                if spec is not None and self._stop_signal is None:
                    await self._call_endpoints(spec)
            code = await exited
            return self._exit_code(code)
        except ServiceRunError as error:
            self._err(f"localmesh: {error}")
            return error.code
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            await self._end_group()
            await self._output_done(5.0)

    # ------------------------------------------------------------ the program

    async def _spawn(self) -> None:
        argv = program_argv(self.options.command)
        env = program_env(self.options, self.target, self.port)
        try:
            self._process = await asyncio.create_subprocess_exec(
                *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL, start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        except (FileNotFoundError, PermissionError) as error:
            raise ServiceRunError(f"cannot start {argv[0]!r}: {error.strerror}", 127) from None
        self._err(f"localmesh: started `{shlex.join(argv)}` (pid {self._process.pid}) "
                  f"with MESHAGENT_PORT={self.port}")

    async def _output_done(self, timeout: float) -> None:
        """Let the program's last lines through (its pipe ends when it and its group exit)."""
        if self._pump is not None:
            await asyncio.wait({self._pump}, timeout=timeout)

    async def _copy_output(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            text = line.decode(errors="replace").rstrip("\n")
            self._tail.append(text)
            self._out(text)

    def _exit_code(self, code: int) -> int:
        if self._stop_signal is not None:
            return 128 + self._stop_signal
        return 128 - code if code < 0 else code  # killed by a signal: 128 + its number

    # ------------------------------------------------------------ spec and calls

    async def _spec_or_exit(self, exited: asyncio.Future[int]) -> dict[str, Any] | None:
        """The program's service spec; ``None`` if we are stopping. Raises at once if the
        program exits (or takes too long) before serving it."""
        reading = asyncio.create_task(self._read_spec())
        try:
            done, _ = await asyncio.wait(
                {reading, exited}, timeout=self.options.startup_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            reading.cancel()
        if reading in done and not reading.cancelled():
            return reading.result()
        if exited in done and self._stop_signal is None:
            await self._output_done(1.0)  # quote its last words
            raise ServiceRunError(self._died_early(exited.result()), exited.result() or 1)
        if self._stop_signal is None:
            raise ServiceRunError(
                f"`{self.options.command}` did not serve {WELL_KNOWN_PATH} on port {self.port} "
                f"within {self.options.startup_timeout:g} s (does it use MESHAGENT_PORT?)"
            )
        return None

    def _died_early(self, code: int) -> str:
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        message = (f"`{self.options.command}` {how} before it served {WELL_KNOWN_PATH} "
                   f"on port {self.port}")
        if self._tail:
            message += "; its last output:\n" + "\n".join(f"  | {line}" for line in self._tail)
        return message

    async def _read_spec(self) -> dict[str, Any]:
        url = f"http://{self._host()}:{self.port}{WELL_KNOWN_PATH}"
        async with httpx.AsyncClient(timeout=5.0) as http:
            while True:
                try:
                    response = await http.get(url)
                    if response.status_code == 200:
                        spec = response.json()
                        if isinstance(spec, dict):
                            return spec
                except (httpx.HTTPError, ValueError):
                    pass  # not listening yet
                await asyncio.sleep(SPEC_POLL_INTERVAL)  # bounded by the startup timeout

    def _host(self) -> str:
        host = os.environ.get("MESHAGENT_HOST", "127.0.0.1")
        return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host

    async def _call_endpoints(self, spec: dict[str, Any]) -> None:
        endpoints = [
            (port, endpoint)
            for port in spec.get("ports") or []
            for endpoint in port.get("endpoints") or []
            if isinstance(endpoint.get("meshagent"), dict)
        ]
        if not endpoints:
            self._err("localmesh: the service has no meshagent endpoints, so nothing is called "
                      "into the room; it keeps running until Ctrl-C")
            return
        async with httpx.AsyncClient(timeout=30.0) as http:
            for port, endpoint in endpoints:
                await self._call(http, port, endpoint)

    async def _call(self, http: httpx.AsyncClient, port: dict[str, Any], endpoint: dict[str, Any]) -> None:
        meshagent = endpoint["meshagent"]
        identity = str(meshagent.get("identity") or "agent")
        number = port.get("num")
        number = number if isinstance(number, int) else self.port  # "*": the port we gave
        url = f"http://{self._host()}:{number}{endpoint.get('path', '')}"
        token = self.target.token(self.options.room, identity, role="agent", api=meshagent.get("api"))
        room_url = room_websocket_url(
            os.environ.get("MESHAGENT_ROOM_URL") or self.target.api_url, self.options.room
        )
        body = {"event": "room.call", "data": {
            "room_url": room_url, "room_name": self.options.room, "token": token, "arguments": {},
        }}
        try:
            response = await http.post(url, json=body)
        except httpx.HTTPError as error:
            raise ServiceRunError(f"calling {identity} at {url} failed: {error}") from None
        if response.status_code >= 300:
            raise ServiceRunError(
                f"calling {identity} at {url} failed: HTTP {response.status_code} {response.text}"
            )
        self._err(f"localmesh: called {identity!r} into room {self.options.room!r} ({url})")

    # ------------------------------------------------------------ stopping

    def _on_signal(self, sig: int) -> None:
        if self._stop_signal is not None:  # a second Ctrl-C: no more waiting
            self._err("localmesh: killing the service")
            self._signal_group(signal.SIGKILL)
            return
        self._stop_signal = sig
        self._err(f"localmesh: stopping the service ({signal.Signals(sig).name}; again to kill)")
        self._signal_group(sig)
        self._killer = asyncio.create_task(self._kill_after_grace())

    async def _kill_after_grace(self) -> None:
        # An idle MeshAgent ServiceHost only notices SIGTERM once some I/O wakes it.
        with contextlib.suppress(httpx.HTTPError):
            async with httpx.AsyncClient(timeout=1.0) as http:
                await http.get(f"http://{self._host()}:{self.port}/")
        await asyncio.sleep(self.options.grace)
        if self._process is not None and self._process.returncode is None:
            self._err(f"localmesh: the service did not stop within {self.options.grace:g} s; killed")
            self._signal_group(signal.SIGKILL)

    def _signal_group(self, sig: int) -> None:
        if self._process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, sig)  # the program leads its own group

    async def _end_group(self) -> None:
        """Nothing the program started may outlive us: TERM the group, then KILL it."""
        if self._killer is not None:
            self._killer.cancel()
        if self._process is None:
            return
        if self._process.returncode is None:
            self._signal_group(signal.SIGTERM)
            try:
                await asyncio.wait_for(self._process.wait(), self.options.grace)
            except TimeoutError:
                pass
        self._signal_group(signal.SIGKILL)  # leftovers of the group, if any
        await self._process.wait()


async def run_service(options: RunOptions, target: ServerTarget, *, out: Echo, err: Echo) -> int:
    return await ServiceRun(options, target, out=out, err=err).run()
