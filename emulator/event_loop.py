"""The event loop ``localmesh serve`` and ``localmesh exec`` run on: uvloop when it is installed, else
asyncio's own.

uvloop costs the server less CPU per operation (docs/benchmarks.md); behaviour is the same on
both (the hot paths that ask whether the loop's turn is over answer conservatively on uvloop,
``localmesh.protocol.loop_turn``). ``--loop asyncio`` (or ``LOCALMESH_LOOP=asyncio``) turns it
off, e.g. to compare or to rule it out. In-process servers (``RoomServer``, the pytest plugin)
run on whatever loop their caller runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from enum import StrEnum

LOOP_ENV = "LOCALMESH_LOOP"


class LoopChoice(StrEnum):
    auto = "auto"  # uvloop if it can be imported, else asyncio
    asyncio = "asyncio"
    uvloop = "uvloop"


class LoopUnavailable(RuntimeError):
    """The loop asked for cannot be had here."""


LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def loop_factory(choice: LoopChoice) -> LoopFactory | None:
    """What ``asyncio.run(..., loop_factory=...)`` takes for ``choice`` (None: asyncio's)."""
    if choice is LoopChoice.asyncio:
        return None
    try:
        import uvloop
    except ImportError:
        if choice is LoopChoice.uvloop:
            raise LoopUnavailable(
                "uvloop is not installed here (pip install uvloop), or use --loop asyncio") from None
        return None
    return uvloop.new_event_loop
