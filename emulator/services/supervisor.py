"""Which services run where: room services in their room from the server's start, project
services in every room that becomes active; each (room, service) pair is one runner.

The supervisor follows the registry: a create starts the service, an update restarts it
with the new spec, a delete or ``enabled: false`` stops it. ``stop()`` ends every process.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .images import LocalRuntime
from .launch import LaunchPlan, RoomContext, plan_launch
from .logs import Logs
from .registry import PROJECT, ServiceRegistry
from .runner import RunnerSettings, ServiceRunner, Sleep
from .spec import ServiceSpec, parse_spec

# (room, identity, api scope or None, role) -> a participant JWT
Minter = Callable[[str, str, dict[str, Any] | None, str], str]
# (room, path, text): create a file in room storage unless it exists
PlaceFile = Callable[[str, str, str], Awaitable[None]]


@dataclass(frozen=True)
class Where:
    """The server a service talks back to; read when a service starts (the port is known late)."""

    api_url: Callable[[], str]
    project_id: str
    runtime_dir: Path  # homes of the running services


class Supervisor:
    def __init__(
        self,
        registry: ServiceRegistry,
        *,
        where: Where,
        mint: Minter,
        logs: Logs,
        place_file: PlaceFile | None = None,
        settings: RunnerSettings | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._registry = registry
        self._where = where
        self._mint = mint
        self.logs = logs
        self._place_file = place_file
        self._background: set[asyncio.Task[None]] = set()
        self.settings = settings or RunnerSettings()
        self._clock = clock
        self._sleep = sleep
        self._specs: dict[tuple[str, str], ServiceSpec] = {}  # (scope, id) -> spec
        self._runners: dict[tuple[str, str], ServiceRunner] = {}  # (room, id) -> runner
        self._active_rooms: set[str] = set()
        self._lock = asyncio.Lock()
        self._started = False
        registry.subscribe(self._changed)

    @property
    def runtime(self) -> LocalRuntime:
        return self._registry.runtime

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Load every stored service and start the room services."""
        async with self._lock:
            for row in await self._registry.rows():
                self._specs[(row.room, row.id)] = parse_spec({**row.spec, "id": row.id})
            self._started = True
            # Rooms with services of their own, and any a participant joined before this.
            rooms = {scope for scope, _ in self._specs if scope != PROJECT} | self._active_rooms
            for room in sorted(rooms):
                self._activate(room)

    async def stop(self) -> None:
        async with self._lock:
            self._started = False
            runners = list(self._runners.values())
            self._runners.clear()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*(runner.stop() for runner in runners), *self._background,
                             return_exceptions=True)

    def room_active(self, room: str) -> None:
        """A participant joined ``room``: project services start there if they do not run yet."""
        if room in self._active_rooms:
            return
        if self._started:
            self._activate(room)
        else:
            self._active_rooms.add(room)  # start() activates it

    def _activate(self, room: str) -> None:
        self._active_rooms.add(room)
        for (scope, service_id), spec in self._specs.items():
            if scope in (room, PROJECT) and spec.enabled and (room, service_id) not in self._runners:
                self._start_in(room, service_id, spec)

    # ------------------------------------------------------------ registry changes

    async def _changed(self, scope: str, service_id: str, spec: ServiceSpec | None) -> None:
        async with self._lock:
            if spec is None:
                self._specs.pop((scope, service_id), None)
            else:
                self._specs[(scope, service_id)] = spec.model_copy(update={"id": service_id})
            rooms = sorted(self._active_rooms) if scope == PROJECT else [scope]
            stopping = [self._runners.pop((room, service_id)) for room in rooms
                        if (room, service_id) in self._runners]
            await asyncio.gather(*(runner.stop() for runner in stopping))
            if spec is None:
                self.logs.forget(service_id)
                return
            if not self._started:
                return
            if scope != PROJECT and scope not in self._active_rooms:
                self._activate(scope)  # the room comes alive with its first service
            elif spec.enabled:
                for room in rooms:
                    if (room, service_id) not in self._runners:  # room_active may have been first
                        self._start_in(room, service_id, self._specs[(scope, service_id)])

    # ------------------------------------------------------------ runners

    def _start_in(self, room: str, service_id: str, spec: ServiceSpec) -> None:
        """The spec's files go into room storage; a container spec also gets its process."""
        if spec.files and self._place_file is not None:
            task = asyncio.create_task(self._place_files(room, spec))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        if spec.container is not None:
            self._start_runner(room, service_id, spec)

    async def _place_files(self, room: str, spec: ServiceSpec) -> None:
        assert self._place_file is not None
        for file in spec.files or ():
            try:
                await self._place_file(room, file.path, file.text)
            except Exception as error:  # a bad path must not stop the service: tell its log
                self.logs.of(room, spec.id or "").write(
                    f"[localmesh] could not create {file.path!r} in room storage: {error}")

    def _start_runner(self, room: str, service_id: str, spec: ServiceSpec) -> None:
        home = self._where.runtime_dir / service_id / quote(room, safe="")
        context = RoomContext(room=room, project_id=self._where.project_id,
                              api_url=self._where.api_url(), home=home)

        def make_plan() -> LaunchPlan:
            home.mkdir(parents=True, exist_ok=True)
            return plan_launch(spec, self.runtime, context,
                               lambda identity, api, role: self._mint(room, identity, api, role),
                               dict(os.environ))

        runner = ServiceRunner(
            room=room, service_id=service_id, name=spec.metadata.name, make_plan=make_plan,
            mint_for=lambda identity, api: self._mint(room, identity, api, "agent"),
            room_url=f"{context.room_url}/rooms/{room}", log=self.logs.of(room, service_id),
            settings=self.settings, clock=self._clock, sleep=self._sleep,
        )
        self._runners[(room, service_id)] = runner
        runner.start()

    # ------------------------------------------------------------ what the room sees

    def services_in(self, room: str) -> list[ServiceSpec]:
        """The room's own services, then the project's (which run in every room)."""
        own = [spec for (scope, _), spec in self._specs.items() if scope == room]
        return own + [spec for (scope, _), spec in self._specs.items() if scope == PROJECT]

    def state_of(self, room: str, service_id: str) -> dict[str, Any]:
        runner = self._runners.get((room, service_id))
        if runner is not None:
            return runner.status.to_json()
        spec = self.find(room, service_id)
        external = spec is not None and spec.container is None
        return {"service_id": service_id, "state": "external" if external else "stopped"}

    def runner(self, room: str, service_id: str) -> ServiceRunner | None:
        return self._runners.get((room, service_id))

    def find(self, room: str, name_or_id: str) -> ServiceSpec | None:
        for spec in self.services_in(room):
            if name_or_id in (spec.id, spec.metadata.name):
                return spec
        return None

    def pids(self) -> list[int]:
        """The watchdog of each running service (tests check none outlives the server)."""
        return [pid for runner in self._runners.values() if (pid := runner.pid) is not None]
