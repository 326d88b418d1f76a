"""The Activity view: a room's timeline, newest first, filtered and paged.

The timeline itself belongs to the emulator (``state.timeline``); until a server has one,
the view says so instead of failing.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..state import EmulatorState


def _timeline(state: EmulatorState) -> Any | None:
    return getattr(state, "timeline", None)


def mark(state: EmulatorState, room: str) -> Any:
    """A value that changes when the room's timeline does."""
    timeline = _timeline(state)
    return None if timeline is None else timeline.last_seq


def news(state: EmulatorState, timeout: float) -> Awaitable[None] | None:
    """Something to await that ends when the timeline records an event (None: no timeline)."""
    timeline = _timeline(state)
    return None if timeline is None else timeline.wait_after(timeline.last_seq, timeout)


def activity(
    state: EmulatorState, room: str, *, kind: str | None = None, participant: str | None = None,
    offset: int = 0, limit: int = 100,
) -> dict[str, Any]:
    timeline = _timeline(state)
    if timeline is None:
        return {"available": False, "total": 0, "offset": 0, "events": [], "kinds": [], "participants": []}
    everything = timeline.events([room])
    chosen = timeline.events([room], kind=kind or None, participant=participant or None)
    newest_first = chosen[::-1][offset:offset + limit]
    return {
        "available": True, "total": len(chosen), "offset": offset,
        "events": [event.to_dict() for event in newest_first],
        "kinds": sorted({event.kind for event in everything}),
        "participants": sorted({event.participant for event in everything if event.participant}),
    }
