"""Services: specs stored per room or project, run as supervised local processes.

    spec.py        the service spec, validated (unknown keys and bad values named)
    images.py      container images mapped onto this machine (runtime images, --mount-image)
    launch.py      can a spec run offline, and the command/env/ports to run it with
    store.py       the services table; registry.py: create/update/delete semantics
    supervisor.py  which service runs in which room; runner.py: one process kept running
    guard.py       the watchdog script between the server and a service's process group
    endpoints.py   liveness and the room.call webhook (the "endpoint" shape)
    status.py      state and events as the room reports them; logs.py: bounded output
    toolkit.py     the room's ``services`` toolkit; api.py: the accounts HTTP routes
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from .images import LocalRuntime
from .logs import Logs
from .registry import PROJECT, ServiceError, ServiceRegistry
from .runner import RunnerSettings
from .store import ServiceStore
from .supervisor import Minter, PlaceFile, Supervisor, Where

__all__ = ["PROJECT", "LocalRuntime", "RunnerSettings", "ServiceError", "Services"]


@dataclass
class Services:
    registry: ServiceRegistry
    supervisor: Supervisor
    logs: Logs
    _scratch: Path | None  # a temporary runtime dir to remove (in-memory servers)

    @classmethod
    async def open(
        cls,
        db: aiosqlite.Connection,
        *,
        data_dir: Path | None,
        runtime: LocalRuntime,
        settings: RunnerSettings,
        where_api_url: Callable[[], str],
        project_id: str,
        mint: Minter,
        place_file: PlaceFile | None = None,
    ) -> Services:
        scratch = None
        if data_dir is None:
            scratch = Path(tempfile.mkdtemp(prefix="localmesh-services-"))
            runtime_dir = scratch
        else:
            runtime_dir = data_dir / "services"
        registry = ServiceRegistry(await ServiceStore.open(db), runtime)
        logs = Logs()
        supervisor = Supervisor(
            registry, where=Where(where_api_url, project_id, runtime_dir), mint=mint, logs=logs,
            place_file=place_file, settings=settings)
        return cls(registry, supervisor, logs, scratch)

    async def start(self) -> None:
        await self.supervisor.start()

    async def stop(self) -> None:
        await self.supervisor.stop()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
