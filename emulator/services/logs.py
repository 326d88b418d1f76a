"""The output of each service, kept in memory and bounded, with followers woken per line."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

MAX_LINES = 2000
MAX_LINE_CHARS = 4000


@dataclass(frozen=True)
class LogLine:
    number: int  # counts every line ever written, so a follower knows what it missed
    at: float
    text: str


class ServiceLog:
    """The last ``max_lines`` lines of one service in one room."""

    def __init__(self, max_lines: int = MAX_LINES) -> None:
        self._lines: deque[LogLine] = deque(maxlen=max_lines)
        self._written = 0
        self._changed = asyncio.Event()

    def write(self, text: str) -> None:
        if len(text) > MAX_LINE_CHARS:
            text = text[:MAX_LINE_CHARS] + " …[line cut]"
        self._written += 1
        self._lines.append(LogLine(self._written, time.time(), text))
        # Wake every follower, then arm a fresh event for the next line.
        self._changed.set()
        self._changed = asyncio.Event()

    def lines(self, after: int = 0) -> list[LogLine]:
        return [line for line in self._lines if line.number > after]

    async def follow(self, after: int = 0) -> AsyncIterator[LogLine]:
        """Every line after ``after``, then each new one as it comes, until cancelled."""
        while True:
            waiting = self._changed
            for line in self.lines(after):
                after = line.number
                yield line
            await waiting.wait()


class Logs:
    """Service logs by (room, service id)."""

    def __init__(self, max_lines: int = MAX_LINES) -> None:
        self._max_lines = max_lines
        self._logs: dict[tuple[str, str], ServiceLog] = {}

    def of(self, room: str, service_id: str) -> ServiceLog:
        key = (room, service_id)
        if key not in self._logs:
            self._logs[key] = ServiceLog(self._max_lines)
        return self._logs[key]

    def forget(self, service_id: str) -> None:
        for key in [k for k in self._logs if k[1] == service_id]:
            del self._logs[key]
