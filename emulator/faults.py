"""Failure injection: make chosen room calls fail, on purpose, a set number of times.

    server.faults.fail("queues", "receive", times=3)          # next 3 receives fail (1008)
    server.faults.fail("storage", "upload", room="r", code=1001, message="no")
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from localmesh.emulator.calls import Call, Handler
from localmesh.emulator.errors import OPERATION_FAILED, RoomError


@dataclass
class Fault:
    toolkit: str
    tool: str
    room: str | None
    code: int
    message: str
    remaining: int | None  # None: for ever, until cleared
    fired: int = 0  # how many calls it has failed so far


class Faults:
    def __init__(self) -> None:
        self._armed: list[Fault] = []

    def fail(
        self, toolkit: str, tool: str, *, times: int | None = 1, room: str | None = None,
        code: int = OPERATION_FAILED, message: str | None = None,
    ) -> None:
        """Make the next ``times`` calls of ``toolkit.tool`` (``None``: all) fail with ``code``."""
        if times is not None and times < 1:
            raise ValueError("times must be at least 1, or None for every call")
        text = message or f"localmesh injected a failure into {toolkit}.{tool}"
        self._armed.append(Fault(toolkit, tool, room, code, text, times))

    def clear(self, belongs: Callable[[Fault], bool] | None = None) -> None:
        """Disarm every fault, or those ``belongs`` picks."""
        self._armed = [f for f in self._armed if belongs is not None and not belongs(f)]

    def all(self) -> list[Fault]:
        """Every armed fault, in the order they were armed."""
        return list(self._armed)

    def armed(self, toolkit: str, tool: str) -> bool:
        return any(f.toolkit == toolkit and f.tool == tool for f in self._armed)

    def take(self, room: str, toolkit: str, tool: str) -> RoomError | None:
        """The error the next such call must fail with, if one is armed (and use it up)."""
        for fault in self._armed:
            if fault.toolkit == toolkit and fault.tool == tool and fault.room in (None, room):
                fault.fired += 1
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._armed.remove(fault)
                return RoomError(fault.code, fault.message)
        return None

    def wrap(self, handler: Handler) -> Handler:
        async def failing(call: Call):
            error = self.take(call.room, call.toolkit, call.tool)
            if error is not None:
                raise error
            return await handler(call)

        return failing
