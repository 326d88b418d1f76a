"""Who is in which room: live sessions, room-wide events, developer logs."""

from __future__ import annotations

import json
import logging
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localmesh.emulator.session import Session

logger = logging.getLogger("localmesh.rooms")


@dataclass(frozen=True)
class DeveloperLogEntry:
    participant: str
    type: str
    data: dict[str, Any]


class Rooms:
    def __init__(self, *, max_log_entries: int = 1000, max_log_bytes: int = 4 * 1024 * 1024) -> None:
        self._sessions: dict[str, set[Session]] = defaultdict(set)
        # Told of every join; the first one of a room starts the project's services there.
        self.on_active: Callable[[str], None] | None = None
        # developer.log entries per room, bounded: the oldest go first.
        self._developer_logs: dict[str, deque[tuple[DeveloperLogEntry, int]]] = defaultdict(deque)
        self._log_bytes: dict[str, int] = defaultdict(int)
        self._max_log_entries = max_log_entries
        self._max_log_bytes = max_log_bytes

    def join(self, session: Session) -> None:
        self._sessions[session.room].add(session)
        if self.on_active is not None:
            self.on_active(session.room)

    async def leave(self, session: Session) -> None:
        sessions = self._sessions.get(session.room)
        if sessions is not None:
            sessions.discard(session)
            if not sessions:
                del self._sessions[session.room]

    def active(self) -> list[str]:
        """The rooms someone is connected to now."""
        return [room for room, sessions in self._sessions.items() if sessions]

    def sessions(self, room: str) -> list[Session]:
        return list(self._sessions.get(room, ()))

    def participants(self, room: str) -> list[dict[str, Any]]:
        return [session.describe() for session in self.sessions(room)]

    async def broadcast(self, room: str, type: str, header: dict[str, Any]) -> None:
        """Push an event to every session of the room, the sender included.

        Never waits on a participant: each event is queued in that session's outbox, and a
        participant too far behind to take it is disconnected (its outbox says why).
        """
        for session in self.sessions(room):
            if not session.notify(type, header):
                logger.debug("room %s: event %s not delivered to %s (connection closing)",
                             room, type, session.participant.name)

    def forget(self, rooms: Callable[[str], bool]) -> None:
        """Forget the developer logs of reset rooms (their live sessions stay)."""
        for room in [r for r in self._developer_logs if rooms(r)]:
            del self._developer_logs[room]
            self._log_bytes.pop(room, None)

    def sessions_where(self, rooms: Callable[[str], bool]) -> list[Session]:
        return [s for room, sessions in self._sessions.items() if rooms(room) for s in sessions]

    def record_developer_log(self, room: str, participant: str, type: str, data: dict[str, Any]) -> None:
        size = len(json.dumps(data, default=str)) + len(type)
        if size > self._max_log_bytes:
            data = {"localmesh_not_kept": f"log data of {size} bytes"
                                          f" (over the {self._max_log_bytes}-byte bound)"}
            size = len(json.dumps(data))
        entries = self._developer_logs[room]
        entries.append((DeveloperLogEntry(participant, type, data), size))
        self._log_bytes[room] += size
        while entries and (
            len(entries) > self._max_log_entries or self._log_bytes[room] > self._max_log_bytes
        ):
            self._log_bytes[room] -= entries.popleft()[1]

    def developer_logs(self, room: str) -> list[DeveloperLogEntry]:
        return [entry for entry, _ in self._developer_logs.get(room, ())]
