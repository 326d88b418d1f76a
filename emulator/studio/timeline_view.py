"""The Activity view: one room's timeline, newest first, filtered by kind and participant, read
a page at a time.

A page is read *as of* a ``seq`` (``upto``): the first page fixes it, the next pages pass it
back, so scrolling through a long timeline while new events arrive neither skips nor repeats a
row. ``newer`` says how many matching events came after it, for the page to offer them.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from ..namespaces import MAIN, room_key
from ..timeline import KINDS
from .data import StudioError

if TYPE_CHECKING:
    from ..state import EmulatorState

# A kind filter is a kind, or a family of kinds (``queue``: ``queue.send`` and ``queue.deliver``).
FAMILIES = tuple(sorted({kind.partition(".")[0] for kind in KINDS}))
_FILTERS = frozenset(KINDS) | frozenset(FAMILIES)


def _key(room: str) -> str:
    return room_key(MAIN, room)  # the Studio shows the main project's rooms


def mark(state: EmulatorState, room: str) -> int:
    """A value that changes when the room's timeline does (O(1): its newest ``seq``)."""
    return state.timeline.newest_seq(_key(room))


def seen(state: EmulatorState) -> int:
    """The newest ``seq`` of any room: what ``news`` waits to be passed."""
    return state.timeline.last_seq


def news(state: EmulatorState, after: int, timeout: float) -> Awaitable[None]:
    """Ends when the timeline records an event after ``after`` (any room), or after ``timeout``."""
    return state.timeline.wait_after(after, timeout)


def check_kind(kind: str | None) -> str | None:
    if not kind:
        return None
    if kind not in _FILTERS:
        raise StudioError(400, f"no event kind {kind!r}: one of {', '.join(sorted(_FILTERS))}")
    return kind


def activity(
    state: EmulatorState, room: str, *, kind: str | None = None, participant: str | None = None,
    offset: int = 0, limit: int = 100, upto: int | None = None,
) -> dict[str, Any]:
    """A page of the room's events, newest first: ``offset``/``limit`` count among the events
    that match and are not newer than ``upto`` (default: the newest now)."""
    timeline = state.timeline
    everything = timeline.events([_key(room)])
    chosen = timeline.events([_key(room)], kind=check_kind(kind), participant=participant or None)
    if upto is None:
        upto = timeline.newest_seq(_key(room))
    visible = bisect_right(chosen, upto, key=lambda event: event.seq)  # chosen is in seq order
    start = max(visible - offset - limit, 0)
    page = chosen[start:max(visible - offset, 0)][::-1]
    kinds = {event.kind for event in everything}
    return {
        "total": visible,
        "upto": upto,
        "newer": len(chosen) - visible,
        "offset": offset,
        "kept": timeline.size,
        "events": [event.to_dict() for event in page],
        "kinds": sorted(kinds | {k.partition(".")[0] for k in kinds}),
        "participants": sorted({event.participant for event in everything if event.participant}),
    }
