"""Faults: make chosen room operations misbehave on purpose, aimed, and counted.

    fault = server.faults.add("error", toolkit="queues", tool="receive", participant="worker", nth=2)
    ...
    assert fault.fired == 1

Kinds (``KINDS``), and where each one acts:

- ``error``: a room call gets an error reply (``code``, ``message``) instead of running.
- ``delay``: a room call waits ``seconds`` (on the server's clock) before it runs.
- ``drop_reply``: a room call runs, and its connection is cut once ``after_frames`` frames of
  its reply have been written (0: before any; a large download dies mid-stream).
- ``drop_connection``: a connection is cut once the server has written ``after_frames`` frames
  to it (the handshake's ``room_ready`` and ``connected`` are two frames each).
- ``refuse``: the websocket upgrade is refused with HTTP ``status`` (503 by default: the
  MeshAgent SDK retries it; 403, 404 and 423 it does not) and ``reason``; for ``seconds`` from
  now, or for the next ``times`` attempts.
- ``fail_write``: a storage write (websocket upload or files-API ``PUT``) fails once
  ``after_bytes`` bytes are stored (exactly that many: a piece that crosses the point is
  stored only up to it; ``None``, or a shorter file: when all are, just before the file would
  be replaced). The file is left as it was: the bytes stream into a new blob, which the
  file's row points at only after the last byte; a failed write's blob is removed.

Every fault is aimed by ``room``, ``participant`` (name), ``toolkit``/``tool`` (call kinds) or
``path`` (a glob, ``fail_write``), and fires from the ``nth`` matching event on, ``times``
times (``None``: until removed). ``fault.seen`` counts the matching events, ``fault.fired`` the
times it acted. Each firing is handed to ``Faults.observer`` (the timeline's hook). Rooms are
room keys (``emulator.namespaces``); a fault with a ``namespace`` only aims at the rooms of
that project (the pytest harness arms them so).
"""

from __future__ import annotations

import asyncio
import fnmatch
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from localmesh.emulator.calls import Call, Handler
from localmesh.emulator.errors import OPERATION_FAILED, RoomError
from localmesh.emulator.frames import FrameBudget
from localmesh.emulator.namespaces import MAIN, namespace_of, room_name

logger = logging.getLogger("localmesh.faults")

ADMIN_PATH = "/_localmesh/faults"  # the admin HTTP API (fault_admin.py)
KINDS = ("error", "delay", "drop_reply", "drop_connection", "refuse", "fail_write")
CALL_KINDS = frozenset({"error", "delay", "drop_reply"})
# The options each kind takes besides the common aim (room, participant, nth, times).
_OPTIONS: dict[str, frozenset[str]] = {
    "error": frozenset({"toolkit", "tool", "code", "message"}),
    "delay": frozenset({"toolkit", "tool", "seconds"}),
    "drop_reply": frozenset({"toolkit", "tool", "after_frames"}),
    "drop_connection": frozenset({"after_frames"}),
    "refuse": frozenset({"status", "reason", "seconds"}),
    "fail_write": frozenset({"path", "after_bytes", "code", "message"}),
}
_ALL_OPTIONS = frozenset().union(*_OPTIONS.values())

Sleep = Callable[[float], Awaitable[Any]]


class FaultFired(NamedTuple):
    """What the observer is told each time a fault acts."""

    fault: Fault
    room: str
    participant: str | None
    subject: str  # "toolkit.tool", "connect", or the path written
    detail: str  # what it did, in a few words


FaultObserver = Callable[[FaultFired], None]


@dataclass(eq=False)
class Fault:
    """One armed fault; also the handle ``Faults.add`` returns (``.fired``, ``.seen``)."""

    id: int
    kind: str
    room: str | None = None
    participant: str | None = None
    toolkit: str | None = None
    tool: str | None = None
    path: str | None = None
    nth: int = 1
    times: int | None = 1
    code: int = OPERATION_FAILED
    message: str | None = None
    seconds: float | None = None
    after_frames: int = 0
    status: int = 503
    reason: str | None = None
    after_bytes: int | None = None
    seen: int = 0
    fired: int = 0
    used: int = 0  # matching events it took (a drop may take a reply that ends before its cut)
    until: float | None = field(default=None, repr=False)  # a refusal's end, on the clock
    namespace: str | None = None  # only the rooms of this project (None: every project's)

    @property
    def remaining(self) -> int | None:
        """Uses left (``None``: unlimited)."""
        return None if self.times is None else max(0, self.times - self.used)

    def spent(self, now: float) -> bool:
        if self.times is not None and self.used >= self.times:
            return True
        return self.until is not None and now >= self.until

    def aims_at(self, room: str, participant: str | None) -> bool:
        return (
            self.room in (None, room) and self.participant in (None, participant)
            and (self.namespace is None or namespace_of(room) == self.namespace)
        )

    def belongs_to(self, namespace: str) -> bool:
        """Whether the fault was armed for rooms of the project ``namespace``."""
        if self.room is not None:
            return namespace_of(self.room) == namespace
        # A fault armed for every project's rooms is the server's own: the main project's.
        return self.namespace == namespace or (self.namespace is None and namespace == MAIN)

    def pending(self, now: float) -> bool:
        """Still owed, for strict teardown: counted uses left, or a fault for every time (or
        for a while) that never fired."""
        if self.spent(now):
            return False
        return self.fired == 0 if self.times is None else bool(self.remaining)

    def aims_at_call(self, toolkit: str, tool: str) -> bool:
        return self.toolkit in (None, toolkit) and self.tool in (None, tool)

    def aims_at_path(self, path: str) -> bool:
        return self.path is None or fnmatch.fnmatchcase(path, self.path)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "kind": self.kind}
        for key in sorted(_OPTIONS[self.kind] | {"room", "participant"}):
            data[key] = getattr(self, key)
        if self.room is not None:
            data["room"] = room_name(self.room)  # the name its clients know
        data.update(nth=self.nth, times=self.times, seen=self.seen, fired=self.fired,
                    remaining=self.remaining, description=self.describe())
        return data

    def describe(self) -> str:
        room = None if self.room is None else room_name(self.room)
        aims = [f"{name} {value!r}" for name, value in (
            ("room", room), ("participant", self.participant), ("path", self.path),
        ) if value is not None]
        if self.kind in CALL_KINDS:
            aims.insert(0, f"{self.toolkit or '*'}.{self.tool or '*'}")
        what = {
            "error": f"error {self.code}",
            "delay": f"delay {self.seconds} s",
            "drop_reply": f"cut after {self.after_frames} reply frame(s)",
            "drop_connection": f"cut after {self.after_frames} frame(s)",
            "refuse": f"refuse with HTTP {self.status}",
            "fail_write": "fail the write" + (
                "" if self.after_bytes is None else f" after {self.after_bytes} byte(s)"),
        }[self.kind]
        when = f"from match #{self.nth}, " if self.nth > 1 else ""
        if self.until is not None and self.times is None:
            how_often = f"for {self.seconds} s"
        else:
            how_often = "every time" if self.times is None else f"{self.times} time(s)"
        target = f" on {', '.join(aims)}" if aims else ""
        return f"#{self.id} {self.kind}{target}: {what}, {when}{how_often}; fired {self.fired}"


class WriteGuard:
    """Watches one storage write; raises the injected failure at the chosen byte."""

    def __init__(self, fault: Fault, path: str, fire: Callable[[str], None]) -> None:
        self._fault = fault
        self._path = path
        self._fire = fire

    def _fail(self, received: int) -> RoomError:
        detail = f"failed the write of {self._path!r} after {received} byte(s)"
        self._fire(detail)
        message = self._fault.message or f"localmesh injected a storage write failure: {detail}"
        return RoomError(self._fault.code, message)

    def take(self, stored: int, data: bytes) -> bytes:
        """The part of ``data`` to store, ``stored`` bytes being in already: all of it, or
        only the bytes up to ``after_bytes`` when the failure point falls inside it (then
        ``received`` fails the write), so the write fails at exactly that byte."""
        after = self._fault.after_bytes
        if after is None or stored + len(data) <= after:
            return data
        return data[:max(0, after - stored)]

    def received(self, total: int) -> None:
        """``total`` bytes have arrived (and are stored) so far."""
        after = self._fault.after_bytes
        if after is not None and total >= after:
            raise self._fail(total)

    def complete(self, total: int) -> None:
        """Every byte has arrived and the file is about to be replaced: the write fails here
        if it has not yet (a file shorter than ``after_bytes`` fails once all of it is in)."""
        raise self._fail(total)


class Faults:
    """The faults of one emulator. ``sleep`` waits out delays and ``now`` times refusals: the
    server's clock (``RoomServer(clock=...)``, virtual with the ``localmesh_clock`` fixture)."""

    def __init__(
        self, *, sleep: Sleep = asyncio.sleep, now: Callable[[], float] = time.monotonic,
        observer: FaultObserver | None = None,
    ) -> None:
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)
        self.sleep = sleep
        self.now = now
        self.observer = observer  # the timeline's hook: told of every firing

    # ------------------------------------------------------------ arming

    def add(self, kind: str, *, nth: int = 1, times: int | None | str = "default",
            **options: Any) -> Fault:
        """Arm a fault and return its handle. ``ValueError`` says what is wrong with a bad one."""
        kind = kind.replace("-", "_")
        if kind not in _OPTIONS:
            raise ValueError(f"unknown fault kind {kind!r}; kinds: {', '.join(KINDS)}")
        given = {key: value for key, value in options.items() if value is not None}
        for key in given:
            if key in ("room", "participant", "namespace"):
                continue
            if key not in _ALL_OPTIONS:
                raise ValueError(f"unknown fault option {key!r}")
            if key not in _OPTIONS[kind]:
                allowed = ", ".join(sorted(_OPTIONS[kind] | {"room", "participant", "nth", "times"}))
                raise ValueError(f"{key!r} does not apply to a {kind} fault (it takes {allowed})")
        if isinstance(nth, bool) or not isinstance(nth, int) or nth < 1:
            raise ValueError(f"nth must be a whole number >= 1, not {nth!r}")
        if times == "default":
            times = None if kind == "refuse" and "seconds" in given else 1
        if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 1):
            raise ValueError(f"times must be a whole number >= 1, or None for every time, not {times!r}")
        fault = Fault(id=next(self._ids), kind=kind, nth=nth, times=times, **given)
        self._check(fault, given)
        if kind == "refuse" and fault.seconds is not None:
            fault.until = self.now() + fault.seconds
        self._faults.append(fault)
        return fault

    @staticmethod
    def _check(fault: Fault, given: dict[str, Any]) -> None:
        def number(name: str, minimum: float, *, whole: bool) -> None:
            value = getattr(fault, name)
            kinds = int if whole else (int, float)
            if isinstance(value, bool) or not isinstance(value, kinds) or value < minimum:
                what = "a whole number" if whole else "a number"
                raise ValueError(f"{name} must be {what} >= {minimum}, not {value!r}")

        for name in ("room", "participant", "toolkit", "tool", "path", "message", "reason", "namespace"):
            if name in given and not isinstance(given[name], str):
                raise ValueError(f"{name} must be a string, not {given[name]!r}")
        if fault.kind == "delay":
            if fault.seconds is None:
                raise ValueError("a delay fault needs seconds")
            number("seconds", 0, whole=False)
        if fault.kind == "refuse":
            if fault.seconds is not None:
                number("seconds", 0, whole=False)
            if isinstance(fault.status, bool) or not isinstance(fault.status, int) or not (
                400 <= fault.status <= 599
            ):
                raise ValueError(f"status must be an HTTP error status (400-599), not {fault.status!r}")
        if "after_frames" in given:
            number("after_frames", 0, whole=True)
        if fault.after_bytes is not None:
            number("after_bytes", 0, whole=True)
        if "code" in given:
            number("code", 1, whole=True)

    def fail(
        self, toolkit: str, tool: str, *, times: int | None = 1, room: str | None = None,
        code: int = OPERATION_FAILED, message: str | None = None, namespace: str | None = None,
    ) -> Fault:
        """Make the next ``times`` calls of ``toolkit.tool`` (``None``: all) fail with ``code``."""
        if times is not None and times < 1:
            raise ValueError("times must be at least 1, or None for every call")
        return self.add("error", toolkit=toolkit, tool=tool, times=times, room=room, code=code,
                        message=message, namespace=namespace)

    def remove(self, fault: Fault | int) -> bool:
        """Disarm one fault (by handle or id); False when there is no such fault."""
        ident = fault.id if isinstance(fault, Fault) else fault
        before = len(self._faults)
        self._faults = [f for f in self._faults if f.id != ident]
        return len(self._faults) < before

    def clear(self, belongs: Callable[[Fault], bool] | None = None) -> None:
        """Remove every fault, or those ``belongs`` picks."""
        self._faults = [f for f in self._faults if belongs is not None and not belongs(f)]

    def all(self, *, include_spent: bool = False) -> list[Fault]:
        """The armed faults, in the order they were added; with ``include_spent``, also those
        used up or past their time, whose counts stay readable until removed."""
        now = self.now()
        return [f for f in self._faults if include_spent or not f.spent(now)]

    def pending(self, belongs: Callable[[Fault], bool] | None = None) -> list[Fault]:
        """Faults still owed (``Fault.pending``), optionally only those ``belongs`` picks."""
        now = self.now()
        return [f for f in self._faults if f.pending(now) and (belongs is None or belongs(f))]

    def get(self, ident: int) -> Fault | None:
        return next((f for f in self._faults if f.id == ident), None)

    def armed(self, toolkit: str, tool: str) -> bool:
        """Whether a call fault that is not spent aims at ``toolkit.tool``."""
        if not self._faults:  # the usual case, asked on every call
            return False
        now = self.now()
        return any(
            f.kind in CALL_KINDS and f.aims_at_call(toolkit, tool) and not f.spent(now)
            for f in self._faults
        )

    # ------------------------------------------------------------ matching

    def _take(self, kinds: frozenset[str] | set[str], room: str, participant: str | None,
              fits: Callable[[Fault], bool] = lambda f: True) -> Fault | None:
        """The first live fault of ``kinds`` aimed at this event whose turn it is (and use it).
        Every live fault the event matches counts it as seen."""
        now = self.now()
        chosen = None
        for fault in self._faults:
            if fault.kind not in kinds or fault.spent(now):
                continue
            if not (fault.aims_at(room, participant) and fits(fault)):
                continue
            fault.seen += 1
            if chosen is None and fault.seen >= fault.nth:
                fault.used += 1
                chosen = fault
        return chosen

    def _fire(self, fault: Fault, room: str, participant: str | None, subject: str, detail: str) -> None:
        """The one place a fault is counted as fired, and the timeline's hook point."""
        fault.fired += 1
        logger.info("room %s: fault #%d (%s) fired on %s for %s: %s",
                    room, fault.id, fault.kind, subject, participant, detail)
        if self.observer is not None:
            self.observer(FaultFired(fault, room, participant, subject, detail))

    # ------------------------------------------------------------ room calls

    def wrap(self, handler: Handler) -> Handler:
        """``handler`` with the call faults applied."""

        async def faulty(call: Call):
            fault = self._take(CALL_KINDS, call.room, call.participant.name,
                               lambda f: f.aims_at_call(call.toolkit, call.tool))
            if fault is None:
                return await handler(call)
            subject = f"{call.toolkit}.{call.tool}"
            if fault.kind == "error":
                self._fire(fault, call.room, call.participant.name, subject, f"error {fault.code}")
                raise RoomError(fault.code, fault.message or f"localmesh injected a failure into {subject}")
            if fault.kind == "delay":
                self._fire(fault, call.room, call.participant.name, subject,
                           f"delayed {fault.seconds} s")
                await self.sleep(fault.seconds or 0.0)
                return await handler(call)
            call.budget = FrameBudget(fault.after_frames, lambda: self._fire(
                fault, call.room, call.participant.name, subject,
                f"cut the connection after {fault.after_frames} reply frame(s)"))
            return await handler(call)

        return faulty

    # ------------------------------------------------------------ connections

    def refusal(self, room: str, participant: str) -> tuple[int, str] | None:
        """``(status, reason)`` when this connection attempt must be refused."""
        fault = self._take({"refuse"}, room, participant)
        if fault is None:
            return None
        reason = fault.reason or "localmesh is refusing connections (injected fault)"
        self._fire(fault, room, participant, "connect", f"refused with {fault.status}")
        return fault.status, reason

    def connection_budget(self, room: str, participant: str) -> FrameBudget | None:
        """A frame budget when this new connection must be cut after some frames."""
        fault = self._take({"drop_connection"}, room, participant)
        if fault is None:
            return None
        return FrameBudget(fault.after_frames, lambda: self._fire(
            fault, room, participant, "connection",
            f"cut the connection after {fault.after_frames} frame(s)"))

    # ------------------------------------------------------------ storage

    def write_guard(self, room: str, participant: str | None, path: str) -> WriteGuard | None:
        """A guard when this write of ``path`` must fail part-way."""
        fault = self._take({"fail_write"}, room, participant, lambda f: f.aims_at_path(path))
        if fault is None:
            return None
        return WriteGuard(fault, path,
                          lambda detail: self._fire(fault, room, participant, path, detail))
