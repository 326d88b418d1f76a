"""One service in one room, kept running: start, watch, restart with capped back-off, stop.

Each run is a process group behind a small watchdog (``guard.py``): the watchdog follows
the server's death (``PR_SET_PDEATHSIG``), so no service outlives the server even when the
server is killed with -9, and it turns a stop into SIGTERM to the whole group, then
SIGKILL after the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from .endpoints import EndpointError, MintFor, call_endpoints, wait_live
from .launch import LaunchPlan, Unrunnable
from .logs import ServiceLog
from .status import PortStatus, ServiceStatus

logger = logging.getLogger("localmesh.services")

GUARD = Path(__file__).with_name("guard.py")
MAX_LINE_BYTES = 256 * 1024
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class RunnerSettings:
    grace: float = 5.0  # seconds between SIGTERM and SIGKILL
    liveness_timeout: float = 60.0
    first_delay: float = 1.0  # back-off before the first restart, doubled each time...
    max_delay: float = 30.0  # ...up to this
    stable_after: float = 30.0  # a run this long resets the back-off


class Backoff:
    def __init__(self, settings: RunnerSettings) -> None:
        self._settings = settings
        self._failures = 0

    def next_delay(self, ran_for: float) -> float:
        if ran_for >= self._settings.stable_after:
            self._failures = 0
        delay = min(self._settings.first_delay * 2 ** self._failures, self._settings.max_delay)
        self._failures += 1
        return delay


class ServiceRunner:
    def __init__(
        self,
        *,
        room: str,
        service_id: str,
        name: str,
        make_plan: Callable[[], LaunchPlan],
        mint_for: MintFor,
        room_url: str,
        log: ServiceLog,
        settings: RunnerSettings,
        clock: Callable[[], float],
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.room = room
        self.service_id = service_id
        self.name = name
        self._make_plan = make_plan
        self._mint_for = mint_for
        self._room_url = room_url
        self.log = log
        self._settings = settings
        self._clock = clock
        self._sleep = sleep
        self.status = ServiceStatus(service_id, clock)
        self._backoff = Backoff(settings)
        self._wake = asyncio.Event()  # a stop or restart request
        self._stopping = False
        self._restart_requested = False
        self._task: asyncio.Task[None] | None = None
        self._process: asyncio.subprocess.Process | None = None

    # ------------------------------------------------------------ control

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"service {self.name} in {self.room}")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task

    def restart(self) -> None:
        """End the current run (or cut the back-off short) and start again at once."""
        self._restart_requested = True
        self._wake.set()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process and self._process.returncode is None else None

    # ------------------------------------------------------------ the loop

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            self._restart_requested = False
            started = self._clock()
            await self._run_once()
            if self._stopping:
                break
            if self._restart_requested:
                self.status.restart_count += 1
                self.status.event("Normal", "Restarting", "restart requested")
                continue
            delay = self._backoff.next_delay(self._clock() - started)
            self.status.state = "restarting"
            self.status.restart_scheduled_at = self._clock() + delay
            self._note(f"restarting in {delay:g} s")
            await self._wait_or_wake(self._sleep(delay))
            self.status.restart_scheduled_at = None
            if not self._stopping:
                self.status.restart_count += 1
        self.status.state = "stopped"

    async def _run_once(self) -> None:
        self.status.state = "starting"
        try:
            plan = self._make_plan()
            process, output, pipe = await self._spawn(plan)
        except (Unrunnable, OSError) as error:
            self._note(f"cannot start: {error}")
            self.status.start_error(str(error))
            return
        self._process = process
        self.status.container_id = f"local-{process.pid}"
        self.status.started_at = self._clock()
        self.status.ports = [PortStatus(port.number, port.liveness) for port in plan.ports]
        for note in plan.notes:
            self.status.event("Normal", "LocalDifference", note)
        self._note(f"started: {plan.argv[-1]}")
        reader = asyncio.create_task(self._pump_output(output))
        calls = asyncio.create_task(self._call_in(plan, process))
        try:
            exited = asyncio.ensure_future(process.wait())
            await self._wait_or_wake(exited)
            if not exited.done():
                await self._terminate(process)
        finally:
            calls.cancel()
            await asyncio.gather(calls, return_exceptions=True)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):  # output still buffered in the pipe
                    await asyncio.shield(reader)
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            pipe.close()
        code = process.returncode
        self._process = None
        self.status.last_exit_code = code
        self.status.last_exit_at = self._clock()
        if not self._stopping and not self._restart_requested:
            self.status.event("Warning", "Exited", f"process exited with code {code}")
        self._note(f"exited with code {code}")

    async def _spawn(
        self, plan: LaunchPlan,
    ) -> tuple[asyncio.subprocess.Process, asyncio.StreamReader, asyncio.BaseTransport]:
        """Start the guard; its output comes through a pipe of our own, so the process
        object is done when the process is, whoever else still holds the pipe."""
        poke = next((f"http://127.0.0.1:{p.number}/" for p in plan.ports if p.http), None)
        argv = [sys.executable, "-I", str(GUARD), "--parent", str(os.getpid()),
                "--grace", str(self._settings.grace), *(["--poke", poke] if poke else []),
                "--", *plan.argv]
        plan.cwd.mkdir(parents=True, exist_ok=True)
        read_fd, write_fd = os.pipe()
        try:
            process = await asyncio.create_subprocess_exec(
                *argv, cwd=plan.cwd, env=plan.env, stdin=asyncio.subprocess.DEVNULL,
                stdout=write_fd, stderr=write_fd,
                start_new_session=True,  # the guard leads its own group; SIGKILL to it spares us
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        output = asyncio.StreamReader(limit=MAX_LINE_BYTES)
        pipe, _ = await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(output), os.fdopen(read_fd, "rb", buffering=0))
        return process, output, pipe

    async def _call_in(self, plan: LaunchPlan, process: asyncio.subprocess.Process) -> None:
        """Endpoint shape: wait for liveness, then call each meshagent endpoint."""
        try:
            for port, port_status in zip(plan.ports, self.status.ports, strict=True):
                if port.http and (port.endpoints or port.liveness):
                    await wait_live(port, port_status, self._settings.liveness_timeout, self._clock)
                if port.endpoints:
                    called = await call_endpoints(port, self.room, self._room_url, self._mint_for)
                    self.status.event("Normal", "Called", "called " + ", ".join(called) + " into the room")
                    self._note("called " + ", ".join(called) + " into the room")
            self.status.state = "running"
        except EndpointError as error:
            self.status.start_error(str(error))
            self._note(str(error))
            await self._terminate(process)

    async def _pump_output(self, output: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await output.readline()
            except ValueError:  # longer than the limit: that much was dropped
                self.log.write(f"[localmesh] (a line longer than {MAX_LINE_BYTES} bytes was cut)")
                continue
            if not line:
                return
            text = line.decode(errors="replace").rstrip("\n")
            self.log.write(text)
            logger.debug("service %s in %s: %s", self.name, self.room, text)

    async def _terminate(self, process: asyncio.subprocess.Process) -> None:
        if process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)  # the guard stops the service's group
        try:
            async with asyncio.timeout(self._settings.grace + 2.0):
                await process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # the service follows by PDEATHSIG
            await process.wait()

    async def _wait_or_wake(self, awaitable: Awaitable[object]) -> None:
        """Wait for ``awaitable`` unless a stop or restart request comes first."""
        task = asyncio.ensure_future(awaitable)
        woken = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({task, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
            if not task.done() and not isinstance(awaitable, asyncio.Future):
                task.cancel()

    def _note(self, text: str) -> None:
        self.log.write(f"[localmesh] {text}")
        logger.info("service %s in room %s: %s", self.name, self.room, text)
