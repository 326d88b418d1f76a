"""A full disk must not lock a room: receive, drain and delete still free space.

SQLite needs a little free space even to delete (the WAL grows before it shrinks), so when
the disk is full nothing could be removed and the room could be neither drained nor
cleaned. ``DiskGuard`` keeps a small reserve file in the data dir. When a call fails with
"database or disk is full" it gives the reserve back to the disk, refuses calls that add
data (with a clear error, so they cannot eat the freed space) and retries calls that free
space once, after having the store cut its WAL back (a checkpoint running in its thread may
have used the reserve's space). When free space is back above twice the reserve, it keeps a
new reserve and lets writes through again.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

from localmesh.emulator.calls import Call, Handler
from localmesh.emulator.errors import OPERATION_FAILED, RoomError

logger = logging.getLogger("localmesh.diskfull")

RESERVE_NAME = "localmesh.reserve"
DEFAULT_RESERVE_BYTES = 4 * 1024 * 1024
# Calls that only remove data: retried once after the reserve is released.
FREEING = frozenset({("queues", "receive"), ("queues", "drain"), ("queues", "close"),
                     ("storage", "delete")})
# Calls that add data: refused while the disk is full.
ADDING = frozenset({("queues", "send"), ("queues", "open"), ("storage", "upload"),
                    ("storage", "move"), ("storage", "download_url")})


def is_disk_full(error: BaseException) -> bool:
    return isinstance(error, sqlite3.OperationalError) and "full" in str(error)


class DiskGuard:
    def __init__(self, data_dir: Path | None, reserve_bytes: int = DEFAULT_RESERVE_BYTES,
                 make_room: Callable[[], None] | None = None) -> None:
        self._reserve = None if data_dir is None else data_dir / RESERVE_NAME
        self._size = reserve_bytes
        self._make_room = make_room
        self.full = False
        self._keep_reserve()

    def _keep_reserve(self) -> None:
        if self._reserve is None or self._reserve.exists():
            return
        try:
            if shutil.disk_usage(self._reserve.parent).free < self._size + 1024 * 1024:
                return
            with open(self._reserve, "wb") as reserve:
                os.posix_fallocate(reserve.fileno(), 0, self._size)
            os.chmod(self._reserve, 0o600)
        except OSError:
            self._reserve.unlink(missing_ok=True)

    def _release(self) -> None:
        self.full = True
        if self._reserve is not None:
            self._reserve.unlink(missing_ok=True)

    def _still_full(self) -> bool:
        if self._reserve is None:
            self.full = False
            return False
        free = shutil.disk_usage(self._reserve.parent).free
        if free >= 2 * self._size:
            self.full = False
            self._keep_reserve()
        return self.full

    def _refusal(self, call: Call) -> RoomError:
        return RoomError(
            OPERATION_FAILED,
            f"{call.toolkit}.{call.tool} refused: the disk holding the room's data is full"
            " (receive, drain and delete still work, to free space)",
        )

    def wrap(self, toolkit: str, tool: str, handler: Handler) -> Handler:
        key = (toolkit, tool)

        async def guarded(call: Call):
            if key in ADDING and self.full and self._still_full():
                raise self._refusal(call)
            try:
                return await handler(call)
            except sqlite3.OperationalError as error:
                if not is_disk_full(error):
                    raise
                logger.warning("the data dir's disk is full (%s.%s): releasing the reserve",
                               toolkit, tool)
                self._release()
                if key not in FREEING:
                    raise self._refusal(call) from None
                if self._make_room is not None:
                    # Only for a call that frees space: the WAL's space could otherwise let
                    # writes through again while the disk is nearly full.
                    self._make_room()
            try:
                return await handler(call)  # with the reserve's space back
            except sqlite3.OperationalError as error:
                if is_disk_full(error):
                    raise self._refusal(call) from None
                raise

        return guarded
