"""Is anything else ready to run in this turn of the event loop?

The hot paths on both sides of a connection ask it (the store's commit as a read ends, the
server's and our client's end-of-turn write, the virtual clock's auto mode): with nothing else
queued, no other callback can join this turn's batch or write, so the work is done at once and
the loop is spared a pass for an end-of-turn callback.

asyncio's own loops keep the turn's callbacks in a deque, ``_ready``, which the loop's I/O
callbacks join too (a socket read is a callback in it). Other loops (uvloop) do not show theirs,
and run a socket's read outside it, so nothing can tell that the turn is over: there the answer
is always "busy", and each caller takes its other path, an end-of-turn callback by
``call_soon``. That path is correct on any loop: a burst still shares one commit and one write,
and ``call_soon`` runs on the loop's next pass, so nothing is held back for long.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sized
from typing import Final

# Stands in for the ready queue of a loop that does not show it: never empty, so always busy.
# (A tuple, so that asking costs what asking an empty deque does: a C-level length check.)
ALWAYS_BUSY: Final[Sized] = ("a loop whose ready queue cannot be seen",)


def ready_queue(loop: asyncio.AbstractEventLoop) -> Sized:
    """The callbacks ``loop`` has ready to run in this turn, besides the one running now: empty
    exactly when nothing else is ready (``if not ready_queue(loop)``: this turn ends with the
    running callback). Fetch it once per loop and keep it: it stays the same object.

    On a loop that does not show its queue, ``ALWAYS_BUSY``: the caller schedules its end of
    turn (``loop.call_soon``), which is safe on any loop, one pass later."""
    if isinstance(loop, asyncio.BaseEventLoop):
        ready = getattr(loop, "_ready", None)
        if isinstance(ready, deque):
            return ready
    return ALWAYS_BUSY


def sees_ready_queue(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether ``ready_queue(loop)`` is the loop's real queue (an "is it idle?" that must not
    answer "busy" for ever, as the virtual clock's auto mode, needs one)."""
    return ready_queue(loop) is not ALWAYS_BUSY


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """The event loop's implementation, as a user would name it: ``asyncio``, ``uvloop``..."""
    return type(loop).__module__.partition(".")[0]
