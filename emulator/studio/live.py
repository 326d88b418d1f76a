"""Live updates: which parts of a room changed, pushed to the page as server-sent events.

The page opens one stream for the room it shows; each event names the topics that changed
(``participants``, ``queues``, ``storage``, ``llm``, ``faults``, ``activity``, ``services``,
or ``rooms`` on the room list) and the page reads those views again. A topic's change is
found by comparing a small fingerprint (a queue's size, the newest file time, the transcript
length...), so every path that changes a room is seen, the Studio's own writes and the
admin API's included. The stream looks again as soon as the room's timeline records
something (at most every ``MIN_GAP`` seconds), and at least every ``interval`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from . import data, services_view, timeline_view

if TYPE_CHECKING:
    from ..state import EmulatorState

INTERVAL = 0.25  # seconds between looks when nothing wakes the stream earlier
MIN_GAP = 0.05  # seconds at least between two looks, however fast the timeline records
HEARTBEAT = 15.0  # seconds of silence before a comment line keeps proxies and browsers patient


async def fingerprint(state: EmulatorState, room: str | None) -> dict[str, Any]:
    """One comparable value per topic, cheap to compute (no file or message is read)."""
    prints: dict[str, Any] = {"faults": [sorted(f.items(), key=str) for f in data.faults(state, room)]}
    if room is None:
        prints["rooms"] = await data.list_rooms(state)
        return prints
    prints["participants"] = [(p["id"], p["name"], json.dumps(p["attributes"], sort_keys=True, default=str))
                              for p in data.participants(state, room)]
    prints["queues"] = await data.queues(state, room)
    prints["storage"] = await state.storage.summary(room)
    transcript = state.llm.transcript(room)
    prints["llm"] = (len(transcript), transcript[-1].index if transcript else 0)
    prints["activity"] = timeline_view.mark(state, room)
    prints["services"] = services_view.mark(state, room)
    return prints


async def _news(state: EmulatorState, seen: int, stopping: asyncio.Event, interval: float) -> None:
    """Return when the timeline records an event after ``seen``, the server stops, or
    ``interval`` passes."""
    waits = [asyncio.ensure_future(stopping.wait()),
             asyncio.ensure_future(timeline_view.news(state, seen, interval))]
    try:
        await asyncio.wait(waits, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*waits, return_exceptions=True)


async def _pause(stopping: asyncio.Event, seconds: float) -> None:
    if seconds > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), seconds)


async def changes(
    state: EmulatorState, room: str | None, stopping: asyncio.Event, *, interval: float = INTERVAL,
    heartbeat: float = HEARTBEAT,
) -> AsyncIterator[list[str]]:
    """The topics that changed, each time some did (an empty list after ``heartbeat`` quiet
    seconds), until ``stopping`` is set."""
    loop = asyncio.get_running_loop()
    seen = timeline_view.seen(state)
    last = await fingerprint(state, room)
    quiet_since = looked = loop.time()
    while not stopping.is_set():
        await _news(state, seen, stopping, interval)
        # A burst of events (a busy room records thousands a second) is looked at once per gap.
        await _pause(stopping, looked + MIN_GAP - loop.time())
        if stopping.is_set():
            return
        seen = timeline_view.seen(state)
        now = await fingerprint(state, room)
        looked = loop.time()
        changed = sorted(topic for topic, value in now.items() if last.get(topic) != value)
        last = now
        if changed or loop.time() - quiet_since >= heartbeat:
            quiet_since = loop.time()
            yield changed


async def event_stream(
    state: EmulatorState, room: str | None, stopping: asyncio.Event, *, interval: float = INTERVAL
) -> AsyncIterator[str]:
    """The text of a ``text/event-stream`` response: ``ready``, then ``change`` events."""
    yield f"event: ready\ndata: {json.dumps({'room': room})}\n\n"
    async for topics in changes(state, room, stopping, interval=interval):
        if topics:
            yield f"event: change\ndata: {json.dumps({'topics': topics})}\n\n"
        else:
            yield ": still here\n\n"
