"""Who is in which room: live sessions, room-wide events, developer logs."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
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
    def __init__(self) -> None:
        self._sessions: dict[str, set[Session]] = defaultdict(set)
        self._developer_logs: dict[str, list[DeveloperLogEntry]] = defaultdict(list)
        # Told of every join; the first one of a room starts the project's services there.
        self.on_active: Callable[[str], None] | None = None

    def join(self, session: Session) -> None:
        self._sessions[session.room].add(session)
        if self.on_active is not None:
            self.on_active(session.room)

    async def leave(self, session: Session) -> None:
        self._sessions[session.room].discard(session)

    def active(self) -> list[str]:
        """The rooms someone is connected to now."""
        return [room for room, sessions in self._sessions.items() if sessions]

    def sessions(self, room: str) -> list[Session]:
        return list(self._sessions.get(room, ()))

    def participants(self, room: str) -> list[dict[str, Any]]:
        return [session.describe() for session in self.sessions(room)]

    async def broadcast(self, room: str, type: str, header: dict[str, Any]) -> None:
        """Push an event to every session of the room, the sender included."""
        sessions = self.sessions(room)
        results = await asyncio.gather(
            *(session.send(type, header) for session in sessions), return_exceptions=True
        )
        for session, result in zip(sessions, results, strict=True):
            if isinstance(result, Exception):  # that session is going away; the others go on
                logger.debug("room %s: event %s not delivered to %s: %r",
                             room, type, session.participant.name, result)

    def record_developer_log(self, room: str, participant: str, type: str, data: dict[str, Any]) -> None:
        self._developer_logs[room].append(DeveloperLogEntry(participant, type, data))

    def developer_logs(self, room: str) -> list[DeveloperLogEntry]:
        return list(self._developer_logs.get(room, ()))
