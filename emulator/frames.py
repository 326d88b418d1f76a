"""A frame budget: how many more websocket frames a connection may carry before it is cut.

Drop faults (``faults.py``) hand one to a session or to a call; the session counts the frames
it queues against it (``session.py``) and cuts the connection where it runs out.
"""

from __future__ import annotations

from collections.abc import Callable


class FrameBudget:
    """How many more frames a connection may carry before a drop fault cuts it."""

    def __init__(self, frames: int, fire: Callable[[], None]) -> None:
        self.left = frames
        self._fire = fire
        self.cut = False  # the cut is queued: nothing more may be written
        self._fired = False

    def exhausted(self) -> bool:
        return self.left <= 0

    def fire(self) -> None:
        """The connection is being cut now: count the fault as fired (once)."""
        if not self._fired:
            self._fired = True
            self._fire()
