"""``Project``: one project of a running emulator, and what a test does with its rooms.

A project has an API key and rooms; rooms of the same name in two projects never meet
(see ``emulator.namespaces``). ``RoomServer.project`` is the main project;
``RoomServer.add_project()`` makes a temporary one, which the pytest harness gives each
test on its shared server.

The emulator's state belongs to the event loop the server runs on. A project reaches it
through a ``Runner``: directly when the caller shares that loop, or across threads when
the server runs in a thread of its own (the harness's shared server). Every method here
goes through the runner, so the same calls work either way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from localmesh.protocol.tokens import ApiKey, mint_token
from localmesh.scripted_llm import (
    RuleFailure,
    Script,
    ScriptPlayer,
    TranscriptEntry,
    coerce_script,
    load_demo_script,
)

from .config import environment
from .faults import CALL_KINDS, Fault
from .namespaces import MAIN, check_room_name, in_namespace, room_key, room_name
from .snapshot import Snapshot, restore_rooms, take_snapshot
from .timeline import Event

if TYPE_CHECKING:
    from .rooms import DeveloperLogEntry
    from .state import EmulatorState

T = TypeVar("T")


class Runner(Protocol):
    """Runs a piece of work where the server's state lives."""

    def call(self, fn: Callable[[], T]) -> T: ...

    async def run(self, fn: Callable[[], Awaitable[T]]) -> T: ...


class Inline:
    """The caller already runs on the server's event loop."""

    def call(self, fn: Callable[[], T]) -> T:
        return fn()

    async def run(self, fn: Callable[[], Awaitable[T]]) -> T:
        return await fn()


INLINE = Inline()


class Server(Protocol):
    """What a project needs of its ``RoomServer`` (which builds projects: no import back)."""

    url: str
    running: bool

    @property
    def state(self) -> EmulatorState: ...

    def room_url(self, room: str) -> str: ...

    async def abort_connections(self, rooms: Callable[[str], bool]) -> int: ...


class Project:
    """The rooms of one project on a running ``RoomServer``, by the names clients use."""

    def __init__(
        self, server: Server, key: ApiKey, namespace: str, runner: Runner = INLINE,
        *, temporary: bool = False,
    ) -> None:
        self._server = server
        self.key = key
        self.namespace = namespace
        self.runner = runner
        self.temporary = temporary
        self._belongs = in_namespace(namespace)
        self.llm = ProjectLLM(self)
        self.faults = ProjectFaults(self)
        self.history = History(self)

    @property
    def _state(self) -> EmulatorState:
        return self._server.state

    @property
    def alive(self) -> bool:
        """Whether its server still runs (a test may have stopped its own)."""
        return self._server.running

    def room_key(self, room: str) -> str:
        return room_key(self.namespace, check_room_name(room))

    # ------------------------------------------------------------ what clients need

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def api_key(self) -> str:
        return self.key.text

    @property
    def project_id(self) -> str:
        return self.key.project_id

    def room_url(self, room: str) -> str:
        return self._server.room_url(check_room_name(room))

    def env(self) -> dict[str, str]:
        """What the real SDK and CLI need to reach this project's rooms."""
        return environment(self.url, self.api_key, self.project_id)

    def mint_token(
        self, *, room: str, name: str, role: str = "agent", api: dict[str, Any] | None = None,
        expires_in: timedelta | None = None,
    ) -> str:
        check_room_name(room)
        return mint_token(self.key, room=room, name=name, role=role, api=api, expires_in=expires_in)

    # ------------------------------------------------------------ rooms

    @property
    def long_poll_window(self) -> float:
        state = self._state
        return state.windows.get(self.namespace, state.queues.long_poll_window)

    @long_poll_window.setter
    def long_poll_window(self, seconds: float) -> None:
        self.runner.call(lambda: self._state.windows.__setitem__(self.namespace, seconds))

    def participants(self, room: str) -> list[dict[str, Any]]:
        key = self.room_key(room)
        return self.runner.call(lambda: self._state.rooms.participants(key))

    def developer_logs(self, room: str) -> list[DeveloperLogEntry]:
        key = self.room_key(room)
        return self.runner.call(lambda: self._state.rooms.developer_logs(key))

    async def drop_connections(self, room: str | None = None) -> int:
        """Abort the TCP connections of one room (or of all the project's rooms), with no
        close frame, as a network failure would. Returns how many."""
        if room is None:
            chosen = self._belongs
        else:
            wanted = self.room_key(room)
            chosen = lambda key: key == wanted  # noqa: E731
        return await self.runner.run(lambda: self._server.abort_connections(chosen))

    async def rooms(self) -> list[str]:
        """The project's rooms that hold queues or files."""
        keys = await self.runner.run(lambda: self._state.store.room_keys(self.namespace))
        return [room_name(key) for key in keys]

    async def queues(self, room: str) -> dict[str, int]:
        """Queue name -> number of messages, for every queue of ``room``."""
        key = self.room_key(room)
        return dict(await self.runner.run(lambda: self._state.queues.list(key)))

    async def leftover_messages(self) -> dict[str, dict[str, int]]:
        """Room -> {queue: size} for every queue of the project that holds messages."""
        async def collect() -> dict[str, dict[str, int]]:
            left: dict[str, dict[str, int]] = {}
            for key in await self._state.store.room_keys(self.namespace):
                sizes = {name: size for name, size in await self._state.queues.list(key) if size}
                if sizes:
                    left[room_name(key)] = sizes
            return left

        return await self.runner.run(collect)

    async def until_waiting(self, room: str, queue: str, count: int = 1) -> None:
        """Return once ``count`` receivers long-poll ``queue`` of ``room``."""
        key = self.room_key(room)
        await self.runner.run(lambda: self._state.queues.until_waiting(key, queue, count))

    async def reset(self, room: str | None = None) -> None:
        """Forget what one room (or every room of the project) holds: queues, messages, files,
        faults, LLM scripts and transcripts, timeline. Connections stay open."""
        if room is None:
            await self.runner.run(lambda: self._state.reset(
                self._belongs, namespace=self.namespace))
        else:
            key = self.room_key(room)
            await self.runner.run(lambda: self._state.reset(lambda k: k == key, room=key))

    # ------------------------------------------------------------ snapshots

    async def export(self, directory: str | Path) -> Path:
        """Write the project's rooms (queues, messages, files) and keys to ``directory``."""
        return (await self.snapshot()).write(directory)

    async def snapshot(self) -> Snapshot:
        async def take() -> Snapshot:
            state = self._state
            keys = await state.store.room_keys(self.namespace)
            project_keys = [k for k in state.keys if state.keyring.namespace(k.key_id) == self.namespace]
            return await take_snapshot(state.store, {room_name(k): k for k in keys}, project_keys)

        return await self.runner.run(take)

    async def import_from(self, source: str | Path | Snapshot) -> list[str]:
        """Load the rooms of an export into this project; returns their names. Refused
        (``SnapshotError``) if one of them already holds queues or files here."""
        snapshot = source if isinstance(source, Snapshot) else Snapshot.read(source)

        async def restore() -> list[str]:
            keys = await restore_rooms(self._state.store, self._state.queues, snapshot, self.room_key)
            return [room_name(key) for key in keys]

        return await self.runner.run(restore)

    # ------------------------------------------------------------ the end

    async def close(self) -> None:
        """A temporary project's end: close its connections, forget its rooms and its key.
        Its namespace is never used again, so nothing of it can reach a later project."""
        if not self.temporary:
            raise RuntimeError("only a temporary project (RoomServer.add_project) can be closed")

        async def close() -> None:
            state = self._state
            state.keyring.remove_namespace(self.namespace)  # refuses new connections first
            state.windows.pop(self.namespace, None)
            for session in state.rooms.sessions_where(self._belongs):
                await session.close(1001, "localmesh: the test's project was closed")
            await state.reset(self._belongs, namespace=self.namespace)
            state.llm.drop_group(self.namespace)

        await self.runner.run(close)


class ProjectLLM:
    """The scripted LLM of a project's rooms: ``set_script(room, script)``, ``transcript(room)``."""

    def __init__(self, project: Project) -> None:
        self._project = project
        self._failures: list[RuleFailure] = []
        self._failures_of: object = None  # the server state the list belongs to
        self.failures  # noqa: B018 - taken now (if the server runs), so it outlives the server

    def _call(self, fn: Callable[[], T]) -> T:
        return self._project.runner.call(fn)

    @property
    def failures(self) -> list[RuleFailure]:
        """The script check failures of the project's rooms (``expect``, Python rules). The
        list itself: it stays readable once the project closed or its server stopped (the
        harness reads it after teardown), and taking it needs no hop to the server's loop."""
        try:
            state = self._project._state
        except RuntimeError:  # stopped: what it kept
            return self._failures
        if self._failures_of is not state:
            self._failures = state.llm.group_failures(self._project.namespace)
            self._failures_of = state
        return self._failures

    def set_script(self, room: str, script: Script | Any | None) -> None:
        """Give ``room`` its own script (a ``Script``, YAML text, a dict or a path); ``None``
        returns it to the server's default script."""
        key = self._project.room_key(room)
        parsed = None if script is None else coerce_script(script)
        self._call(lambda: self._project._state.llm.set_script(key, parsed))

    def transcript(self, room: str, conversation: str | None = None) -> list[TranscriptEntry]:
        key = self._project.room_key(room)
        return self._call(lambda: list(self._project._state.llm.transcript(key, conversation)))

    def clear_transcript(self, room: str) -> None:
        key = self._project.room_key(room)
        self._call(lambda: self._project._state.llm.clear_transcript(key))

    def reset(self, room: str) -> None:
        key = self._project.room_key(room)
        self._call(lambda: self._project._state.llm.reset(key))

    def player(self, room: str) -> ScriptPlayer:
        key = self._project.room_key(room)
        return self._call(lambda: self._project._state.llm.player(key))

    def transcripts(self) -> dict[str, list[TranscriptEntry]]:
        """Room -> transcript, for every room of the project that talked to the LLM."""
        def collect() -> dict[str, list[TranscriptEntry]]:
            hub = self._project._state.llm
            rooms = [r for r in hub.rooms() if self._project._belongs(r)]
            return {room_name(r): hub.transcript(r) for r in rooms if hub.transcript(r)}

        return self._call(collect)

    def unused_rules(self) -> dict[str, list[str]]:
        """Room -> rules that never answered, for rooms given their own script."""
        def collect() -> dict[str, list[str]]:
            hub = self._project._state.llm
            found = {}
            for room in hub.rooms():
                # A room's own script; the built-in demo is nobody's own, whoever set it.
                if (self._project._belongs(room) and hub.has_own_script(room)
                        and hub.script(room) is not load_demo_script()):
                    unused = hub.player(room).unused_rules(fallbacks=False)
                    if unused:
                        found[room_name(room)] = unused
            return found

        return self._call(collect)

    def unmatched(self) -> dict[str, list[TranscriptEntry]]:
        """Room -> requests no rule answered."""
        def collect() -> dict[str, list[TranscriptEntry]]:
            hub = self._project._state.llm
            found = {}
            for room in hub.rooms():
                if self._project._belongs(room):
                    missed = [e for e in hub.transcript(room) if e.rule is None]
                    if missed:
                        found[room_name(room)] = missed
            return found

        return self._call(collect)


class ProjectFaults:
    """Faults in a project's rooms (``server.faults``, narrowed to them): ``add(kind, ...)``
    with the options of ``Faults.add``, ``fail("queues", "receive", times=3)`` for an error.
    ``room`` is a room name of the project; a fault without one aims at every room of the
    project, and at no other project's."""

    def __init__(self, project: Project) -> None:
        self._project = project

    def _belongs(self, fault: Fault) -> bool:
        return fault.belongs_to(self._project.namespace)

    def add(self, kind: str, *, room: str | None = None, **options: Any) -> Fault:
        """Arm a fault and return its handle (``.fired``, ``.seen``, ``.remaining``)."""
        key = None if room is None else self._project.room_key(room)
        return self._project.runner.call(lambda: self._project._state.faults.add(
            kind, room=key, namespace=self._project.namespace, **options))

    def fail(
        self, toolkit: str, tool: str, *, times: int | None = 1, room: str | None = None,
        code: int | None = None, message: str | None = None,
    ) -> Fault:
        """Make the next ``times`` calls of ``toolkit.tool`` (``None``: every call, until
        ``clear()``) in ``room`` (default: any room of the project) fail with ``code``
        (default 1008, operation failed)."""
        if times is not None and times < 1:
            raise ValueError("times must be at least 1, or None for every call")
        return self.add("error", toolkit=toolkit, tool=tool, times=times, room=room, code=code,
                        message=message)

    def remove(self, fault: Fault | int) -> bool:
        """Disarm one of the project's faults; False when it has no such fault."""
        ident = fault.id if isinstance(fault, Fault) else fault
        faults = self._project._state.faults
        return self._project.runner.call(lambda: any(
            f.id == ident and self._belongs(f) for f in faults.all(include_spent=True)
        ) and faults.remove(ident))

    def clear(self) -> None:
        self._project.runner.call(lambda: self._project._state.faults.clear(self._belongs))

    def armed(self, toolkit: str, tool: str) -> bool:
        """Whether a call fault of the project that is not spent aims at ``toolkit.tool``."""
        return any(f.kind in CALL_KINDS and f.aims_at_call(toolkit, tool) for f in self.all())

    def all(self, *, include_spent: bool = False) -> list[Fault]:
        """The project's armed faults (``include_spent``: also used-up ones)."""
        faults = self._project._state.faults
        return self._project.runner.call(lambda: [
            f for f in faults.all(include_spent=include_spent) if self._belongs(f)])

    def pending(self) -> list[Fault]:
        """Faults still owed: counted uses left, or a for-ever fault that never fired."""
        return self._project.runner.call(
            lambda: self._project._state.faults.pending(self._belongs))


class History:
    """The project's timeline: ``events()``, ``calls("storage", "upload")``, ``lines()``."""

    def __init__(self, project: Project) -> None:
        self._project = project

    def _rooms(self, room: str | None) -> Callable[[str], bool]:
        if room is None:
            return self._project._belongs
        key = self._project.room_key(room)
        return lambda k: k == key

    def events(
        self, room: str | None = None, *, kind: str | None = None, participant: str | None = None,
        since: int = 0,
    ) -> list[Event]:
        """Events in order, of one room or all the project's rooms. ``kind`` may be a prefix
        (``"queue"``, ``"storage"``); ``since`` keeps events after that ``seq``."""
        rooms = self._rooms(room)
        return self._project.runner.call(lambda: self._project._state.timeline.events(
            rooms, kind=kind, participant=participant, since=since))

    def calls(
        self, toolkit: str | None = None, tool: str | None = None, *, room: str | None = None,
        participant: str | None = None, ok: bool | None = None,
    ) -> list[Event]:
        """Answered calls (``kind == "call"``), optionally of one toolkit/tool, room or
        participant; ``ok=True``/``False`` keeps successes/errors."""
        return [
            e for e in self.events(room, kind="call", participant=participant)
            if e.kind == "call" and (toolkit is None or e.toolkit == toolkit)
            and (tool is None or e.tool == tool) and (ok is None or e.ok == ok)
        ]

    async def wait_for(
        self, *, kind: str, room: str | None = None, participant: str | None = None,
        timeout: float = 10.0,
    ) -> Event:
        """The first event of ``kind`` (a prefix works) in ``room``, waiting for it to be
        recorded if need be (at most ``timeout`` seconds, then ``TimeoutError``)."""
        rooms = self._rooms(room)
        timeline = lambda: self._project._state.timeline  # noqa: E731

        async def wait() -> Event:
            async with asyncio.timeout(timeout):
                while True:
                    seen = timeline().last_seq
                    found = timeline().events(rooms, kind=kind, participant=participant)
                    if found:
                        return found[0]
                    await timeline().wait_after(seen, timeout)

        return await self._project.runner.run(wait)

    def lines(self, room: str | None = None, *, limit: int | None = None) -> list[str]:
        """One compact line per event (the last ``limit``), times relative to the first."""
        events = self.events(room)
        if limit is not None:
            events = events[-limit:] if limit > 0 else []
        start = events[0].at if events else None
        return [event.line(start) for event in events]

    def clear(self, room: str | None = None) -> None:
        rooms = self._rooms(room)
        self._project.runner.call(lambda: self._project._state.timeline.clear(rooms))


__all__ = ["INLINE", "MAIN", "History", "Inline", "Project", "ProjectFaults", "ProjectLLM", "Runner"]
