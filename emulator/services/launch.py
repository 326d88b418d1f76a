"""From a stored service spec to a local process: what to run, where, with which environment.

``check_runnable`` is what ``service create`` asks: can this spec run here, offline? It
names the field and the reason when not. ``plan_launch`` is what the supervisor asks each
time it starts the service in a room: the command line, working folder, environment
(a fresh token per ``token:`` variable) and the ports it will call.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localmesh.protocol.llm_urls import llm_environment

from .images import LocalRuntime, runtime_of
from .spec import ServiceSpec, SpecError

# (identity, api scope or None, role) -> a participant JWT for the service's room
MintToken = Callable[[str, dict[str, Any] | None, str], str]

_LLM_KEY_VARIABLES = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GROK_API_KEY", "XAI_API_KEY")


class Unrunnable(SpecError):
    """A valid spec that cannot run on this machine; the message says what and why."""


@dataclass(frozen=True)
class PortPlan:
    number: int
    auto: bool  # the spec said "*": localmesh picked a free port
    liveness: str | None
    endpoints: list[tuple[str, str, dict[str, Any] | None]]  # (path, identity, api)
    http: bool


@dataclass(frozen=True)
class LaunchPlan:
    argv: list[str]
    cwd: Path
    env: dict[str, str]
    ports: list[PortPlan] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what localmesh did differently (events)


def _fail(where: str, why: str) -> Unrunnable:
    return Unrunnable(f"{where}: {why}")


def check_runnable(spec: ServiceSpec, runtime: LocalRuntime) -> None:
    """Raise ``Unrunnable`` unless localmesh can run ``spec`` offline."""
    container = spec.container
    if container is None:
        return  # an external service or a plain listing: nothing to run
    kind = runtime_of(container.image)
    if kind is None:
        raise _fail("container.image", (
            f"{container.image!r} cannot be pulled offline. localmesh runs the MeshAgent CLI image"
            " (meshagent/cli:…) and the python SDK image (…/python-sdk:…) with the local"
            " environment; put your own code in a code image under container.storage.images and"
            " map it to a local folder with `localmesh serve --mount-image IMAGE=DIR`"))
    missing = runtime.missing(kind)
    if missing:
        raise _fail("container.image", f"{container.image!r} cannot run here: {missing}")
    if not (container.command or "").strip():
        raise _fail("container.command", (
            "required locally: localmesh does not know the image's own entrypoint, so the spec"
            " must say what to run"))
    for index, variable in enumerate(container.environment or ()):
        if variable.secret is not None:
            raise _fail(f"container.environment[{index}].secret",
                        "project secrets are not emulated offline; use a value instead")
    _check_mounts(spec, runtime)
    auto_ports = [i for i, port in enumerate(spec.ports or ()) if port.num == "*"]
    if len(auto_ports) > 1:
        raise _fail(f"ports[{auto_ports[1]}].num", (
            'only one port may be "*" locally: MESHAGENT_PORT can name only one'))
    if container.working_dir and _mapped_path(container.working_dir, _mount_table(spec, runtime)) is None:
        raise _fail("container.working_dir", (
            f"{container.working_dir!r} is a folder inside the image; locally only folders"
            " under a mounted code image (container.storage.images) exist"))


def _check_mounts(spec: ServiceSpec, runtime: LocalRuntime) -> None:
    storage = spec.container.storage if spec.container else None
    if storage is None:
        return
    unsupported = {
        "volumes": "room volumes are not emulated",
        "files": "file mounts are not emulated; put the file in a mounted code image",
        "empty_dirs": "empty-dir mounts are not emulated",
        "configs": "runtime config mounts are not emulated",
    }
    for name, why in unsupported.items():
        if getattr(storage, name):
            raise _fail(f"container.storage.{name}", why)
    for index, mount in enumerate(storage.images or ()):
        if runtime.mounted_folder(mount.image) is None:
            raise _fail(f"container.storage.images[{index}].image", (
                f"{mount.image!r} cannot be pulled offline; start localmesh serve with"
                f" --mount-image {mount.image}=DIR (a local folder with the image's files) to"
                f" mount that folder at {mount.path}"))


def _mount_table(spec: ServiceSpec, runtime: LocalRuntime) -> list[tuple[str, Path]]:
    """(container path, local folder) for each mounted code image, longest path first."""
    table = []
    storage = spec.container.storage if spec.container else None
    for mount in (storage.images if storage else None) or ():
        folder = runtime.mounted_folder(mount.image)
        if folder is not None:
            local = folder / mount.subpath.strip("/") if mount.subpath else folder
            table.append((mount.path.rstrip("/") or "/", local))
    return sorted(table, key=lambda item: len(item[0]), reverse=True)


def _mapped_path(path: str, table: list[tuple[str, Path]]) -> Path | None:
    for inside, local in table:
        if path == inside or path.startswith(inside + "/"):
            return local / path[len(inside):].lstrip("/")
    return None


def rewrite_paths(command: str, table: list[tuple[str, Path]]) -> str:
    """Replace each mounted container path in ``command`` with its local folder."""
    for inside, local in table:
        # A whole path segment: "/src" or "/src/x", not "/srcx" or "a/src".
        pattern = re.compile(rf"(?<![\w./-]){re.escape(inside)}(?=/|\s|$|[\"';:])")
        command = pattern.sub(lambda _m, local=local: str(local), command)
    return command


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class RoomContext:
    """Where a service runs: its room, and the URLs and ids its environment points at."""

    room: str
    project_id: str
    api_url: str  # http://127.0.0.1:PORT
    home: Path  # the service's own HOME and default working folder

    @property
    def room_url(self) -> str:
        return self.api_url.replace("http", "ws", 1)


def agent_environment(context: RoomContext, container_token: str) -> dict[str, str]:
    """What ``template: agent`` gives a MeshAgent container, pointed at localmesh."""
    env = {
        "MESHAGENT_API_URL": context.api_url,
        "MESHAGENT_ROOM_URL": context.room_url,
        "MESHAGENT_ROOM": context.room,
        "MESHAGENT_PROJECT_ID": context.project_id,
        "MESHAGENT_TOKEN": container_token,
        "MESHAGENT_DISABLE_VERSION_CHECK": "1",
        **llm_environment(context.api_url),  # OPENAI_BASE_URL and the other providers'
    }
    env.update(dict.fromkeys(_LLM_KEY_VARIABLES, container_token))
    return env


def _base_environment(
    runtime: LocalRuntime, context: RoomContext, inherited: dict[str, str],
) -> dict[str, str]:
    # A container starts from a clean environment; so does a local service, except what
    # running programs at all needs. HOME is the service's own: a ~/.meshagent profile of
    # the user's would otherwise point the agent at the cloud.
    env = {name: inherited[name] for name in ("LANG", "LC_ALL", "TZ", "TMPDIR") if name in inherited}
    env["PATH"] = f"{runtime.bin_dir}:{inherited.get('PATH', '/usr/bin:/bin')}"
    env["HOME"] = str(context.home)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def plan_launch(
    spec: ServiceSpec,
    runtime: LocalRuntime,
    context: RoomContext,
    mint: MintToken,
    inherited: dict[str, str],
    pick_port: Callable[[], int] = free_port,
) -> LaunchPlan:
    """The process to start for ``spec`` in ``context.room``; ``Unrunnable`` if it cannot run."""
    check_runnable(spec, runtime)
    container = spec.container
    assert container is not None and container.command
    table = _mount_table(spec, runtime)
    env = _base_environment(runtime, context, inherited)
    if container.template != "none":
        identity = spec.agents[0].name if spec.agents else spec.metadata.name
        env.update(agent_environment(context, mint(identity, None, "agent")))
    ports = []
    for port in spec.ports or ():
        number = pick_port() if port.num == "*" else int(port.num)
        if port.num == "*":
            env["MESHAGENT_PORT"] = str(number)
        endpoints = [(e.path, e.meshagent.identity, e.meshagent.api)
                     for e in port.endpoints if e.meshagent is not None]
        ports.append(PortPlan(number, port.num == "*", port.liveness, endpoints, port.type != "tcp"))
    if ports:
        env["MESHAGENT_HOST"] = "127.0.0.1"
    for variable in container.environment or ():
        if variable.token is not None:
            token = variable.token
            env[variable.name] = mint(token.identity, token.api, token.role or "agent")
        elif variable.value is not None:
            env[variable.name] = variable.value
    notes = [f"room storage mount at {m.path} is not provided locally; agents use the room"
             " storage API" for m in (container.storage.room if container.storage else None) or ()]
    cwd = _mapped_path(container.working_dir, table) if container.working_dir else context.home
    command = rewrite_paths(container.command, table)
    return LaunchPlan(argv=["/bin/sh", "-c", command], cwd=cwd or context.home, env=env,
                      ports=ports, notes=notes)
