"""The room timeline: what happened in each room, in order, kept in a bounded ring per room.

Recording sits on the hot path (every call of every participant), so ``record`` only appends
a small ``Event`` tuple to the room's deque; summaries and text lines are worked out when
someone reads them. A ring keeps the last ``size`` events of its room, so a long ``localmesh
serve`` holds a bounded number per room, and a call's event keeps only a bounded copy of its
arguments (``bounded_arguments``): the ring never holds a 10 MB message alive.

Kinds (``KINDS``): ``connect``, ``disconnect``, ``call`` (answered, ``code`` None or the error code),
``call.unanswered`` (its connection closed first), ``queue.send``, ``queue.deliver``,
``storage.write``, ``storage.move``, ``storage.delete``, ``fault``, ``llm``.
"""

from __future__ import annotations

import asyncio
import itertools
import reprlib
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from .namespaces import room_name

DEFAULT_TIMELINE_SIZE = 1000
_VALUE_LIMIT = 40
_SUMMARY_LIMIT = 120

RoomFilter = Callable[[str], bool]
KINDS = ("connect", "disconnect", "call", "call.unanswered", "queue.send", "queue.deliver",
         "storage.write", "storage.move", "storage.delete", "fault", "llm")
_CALL_KINDS = frozenset({"call", "call.unanswered", "fault"})


_MAX_KEPT_TEXT = 200  # characters of a string argument an event keeps
KEEP_WHOLE_BYTES = 1024  # a request this small keeps its arguments whole (no walk)
_MAX_KEPT_KEYS = 12
class _InOrder(reprlib.Repr):
    """reprlib's bounded repr, with a dict's keys in their order (reprlib sorts them), as a
    small value kept whole shows them: one order however big the arguments were."""

    def repr_dict(self, x: dict[Any, Any], level: int) -> str:
        if not x:
            return "{}"
        if level <= 0:
            return "{...}"
        shown = [f"{self.repr1(key, level - 1)}: {self.repr1(x[key], level - 1)}"
                 for key in itertools.islice(x, self.maxdict)]
        if len(x) > self.maxdict:
            shown.append("...")
        return "{" + ", ".join(shown) + "}"


_BOUNDED = _InOrder(maxlevel=3, maxdict=6, maxlist=6, maxtuple=6, maxset=6, maxstring=80,
                    maxother=80, maxlong=40)


class Shown(str):
    """An argument the event keeps only as a bounded repr (it was too big to keep)."""

    def __repr__(self) -> str:
        return str(self)


def bounded_arguments(arguments: Any, request_bytes: int | None = None) -> dict[str, Any] | None:
    """What a call's event keeps of its arguments: small values as they are, long strings cut,
    large containers as a bounded repr. Costs a few microseconds whatever the size, and
    nothing for arguments parsed from a request of at most ``KEEP_WHOLE_BYTES`` (most calls):
    those are small by construction, so the event keeps them as they are."""
    if not isinstance(arguments, dict):
        return None
    if request_bytes is not None and request_bytes <= KEEP_WHOLE_BYTES:
        return dict(arguments)  # a copy of the top level, as below: a handler may change it
    kept: dict[str, Any] = {}
    for index, (key, value) in enumerate(arguments.items()):
        if index == _MAX_KEPT_KEYS:
            kept["..."] = Shown(f"{len(arguments) - index} more")
            break
        if isinstance(value, str):
            kept[key] = value if len(value) <= _MAX_KEPT_TEXT else Shown(_BOUNDED.repr(value))
        elif value is None or isinstance(value, bool | int | float):
            kept[key] = value if not isinstance(value, int) or abs(value) < 10**18 else Shown("<int>")
        elif _small(value, [_SMALL_NODES]):
            kept[key] = value  # kept whole: its summary is made when read
        else:
            kept[key] = Shown(_BOUNDED.repr(value))
    return kept


_SMALL_NODES = 24  # a container of at most this many values, all short, is kept as it is


def _small(value: Any, budget: list[int]) -> bool:
    """Whether ``value`` holds at most ``budget[0]`` values, none a long string or a huge
    int: a walk that stops as soon as it is not (cheaper than a bounded repr)."""
    budget[0] -= 1
    if budget[0] < 0:
        return False
    if isinstance(value, str):
        return len(value) <= _MAX_KEPT_TEXT
    if value is None or isinstance(value, bool | float):
        return True
    if isinstance(value, int):
        return abs(value) < 10**18
    if isinstance(value, dict):
        return all(isinstance(k, str) and len(k) <= _MAX_KEPT_TEXT and _small(v, budget)
                   for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_small(v, budget) for v in value)
    return False


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _VALUE_LIMIT else text[: _VALUE_LIMIT - 3] + "..."


def summarise_arguments(arguments: Any) -> str:
    """``path='a.txt', overwrite=True``: each top-level argument, shortened."""
    if not isinstance(arguments, dict):
        return "" if arguments is None else _short(arguments)
    text = ", ".join(f"{key}={_short(value)}" for key, value in arguments.items())
    return text if len(text) <= _SUMMARY_LIMIT else text[: _SUMMARY_LIMIT - 3] + "..."


class Event(NamedTuple):
    """One thing that happened in a room (a named tuple: the cheapest record to make).

    ``subject`` is ``toolkit.tool`` for calls and faults, the queue for queue events, the
    path for storage events and the rule for LLM exchanges. ``code`` is a call's or fault's
    error code (``None``: it succeeded), or an LLM error's HTTP status. ``detail`` is kept as
    recorded (a call's arguments, a message id, a move's destination...).
    """

    seq: int
    at: float  # time.time()
    room_key: str
    kind: str
    participant: str | None
    subject: str = ""
    code: int | None = None
    duration: float | None = None  # seconds, for calls
    detail: Any = None

    @property
    def room(self) -> str:
        """The room's name, as its clients know it."""
        return room_name(self.room_key)

    @property
    def ok(self) -> bool:
        return self.code is None

    @property
    def toolkit(self) -> str | None:
        return self.subject.partition(".")[0] if self.kind in _CALL_KINDS else None

    @property
    def tool(self) -> str | None:
        return self.subject.partition(".")[2] if self.kind in _CALL_KINDS else None

    @property
    def arguments(self) -> dict[str, Any]:
        """A call's json arguments (or what a streamed call said about itself)."""
        if self.kind in ("call", "call.unanswered") and isinstance(self.detail, dict):
            return self.detail
        return {}

    @property
    def message_id(self) -> int | None:
        return self.detail if self.kind in ("queue.send", "queue.deliver") else None

    def summary(self) -> str:
        """What happened, in a few words (without time, room or participant)."""
        kind, detail = self.kind, self.detail
        if kind in ("call", "call.unanswered"):
            if kind == "call.unanswered":
                outcome = "no answer (connection closed)"
            else:
                outcome = "ok" if self.code is None else f"error {self.code}"
            took = "" if self.duration is None else f" {self.duration * 1000:.1f} ms"
            return f"{self.subject}({summarise_arguments(detail)}) -> {outcome}{took}"
        if kind in ("queue.send", "queue.deliver"):
            return f"{self.subject} #{detail}"
        if kind == "storage.write":
            return f"{self.subject} ({detail} B)"
        if kind == "storage.move":
            return f"{self.subject} -> {detail}"
        if kind == "fault":
            return f"{self.subject}: {detail} (an injected fault)"
        if kind == "llm":
            return f"rule {self.subject or 'none'}: {detail}"
        if kind in ("connect", "disconnect"):
            return str(detail or "")
        return f"{self.subject} {detail}" if detail is not None else self.subject

    def line(self, since: float | None = None) -> str:
        """One compact line: time (relative to ``since`` if given), room, kind, who, what."""
        when = f"+{self.at - since:8.3f}s" if since is not None else time.strftime(
            "%H:%M:%S", time.localtime(self.at)) + f".{int(self.at * 1000) % 1000:03d}"
        who = self.participant or "-"
        return f"{when} {self.room:<12} {self.kind:<14} {who:<12} {self.summary()}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq, "at": self.at, "room": self.room, "kind": self.kind,
            "participant": self.participant, "subject": self.subject, "code": self.code,
            "duration": self.duration, "summary": self.summary(),
        }


# Event(...) without its generated __new__ (a Python call; two events per queue operation).
_new_event = tuple.__new__


class Timeline:
    """The events of every room of one emulator; ``size`` events kept per room."""

    def __init__(self, size: int = DEFAULT_TIMELINE_SIZE) -> None:
        if size < 1:
            raise ValueError("the timeline keeps at least one event per room")
        self.size = size
        self._rings: dict[str, deque[Event]] = {}
        self._seq = itertools.count(1)
        self._last_seq = 0
        self._changed: asyncio.Event | None = None  # only while someone follows

    def record(
        self, room_key: str, kind: str, participant: str | None, subject: str = "",
        code: int | None = None, duration: float | None = None, detail: Any = None,
    ) -> None:
        ring = self._rings.get(room_key)
        if ring is None:
            ring = self._rings[room_key] = deque(maxlen=self.size)
        seq = self._last_seq = next(self._seq)
        ring.append(_new_event(Event, (seq, time.time(), room_key, kind, participant, subject, code,
                                       duration, detail)))
        if self._changed is not None:
            self._changed.set()

    # ------------------------------------------------------------ reading

    def room_keys(self) -> list[str]:
        return list(self._rings)

    def events(
        self,
        rooms: RoomFilter | Iterable[str] | None = None,
        *,
        kind: str | None = None,
        participant: str | None = None,
        since: int = 0,
    ) -> list[Event]:
        """Events in order (by ``seq``), of the rooms chosen by ``rooms`` (keys, or a filter
        on keys; ``None``: all). ``kind`` ``"queue"`` matches ``queue.send`` and
        ``queue.deliver``; ``since`` keeps events after that ``seq``."""
        if rooms is None:
            rings = list(self._rings.values())
        elif callable(rooms):
            rings = [ring for key, ring in self._rings.items() if rooms(key)]
        else:
            rings = [self._rings[key] for key in rooms if key in self._rings]
        found = [
            event for ring in rings for event in ring
            if event.seq > since
            and (kind is None or event.kind == kind or event.kind.startswith(kind + "."))
            and (participant is None or event.participant == participant)
        ]
        if len(rings) > 1:
            found.sort(key=lambda event: event.seq)
        return found

    @property
    def last_seq(self) -> int:
        return self._last_seq

    def newest_seq(self, room_key: str) -> int:
        """The ``seq`` of the room's newest event (0: none): a change marker for one room,
        read in O(1) from its ring."""
        ring = self._rings.get(room_key)
        return ring[-1].seq if ring else 0

    async def wait_after(self, seq: int, timeout: float) -> None:
        """Return once an event after ``seq`` was recorded, or after ``timeout`` seconds."""
        if self._changed is None:
            self._changed = asyncio.Event()
        try:
            async with asyncio.timeout(timeout):
                while self._last_seq <= seq:
                    await self._changed.wait()
                    self._changed.clear()
        except TimeoutError:
            pass

    # ------------------------------------------------------------ forgetting

    def clear(self, rooms: RoomFilter | None = None) -> None:
        """Forget the events of the rooms ``rooms`` picks (all by default)."""
        for key in [key for key in self._rings if rooms is None or rooms(key)]:
            del self._rings[key]
