"""Who is in which room: live sessions, room-wide events, developer logs."""

from __future__ import annotations

import logging
from collections import defaultdict
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

    def join(self, session: Session) -> None:
        self._sessions[session.room].add(session)

    async def leave(self, session: Session) -> None:
        self._sessions[session.room].discard(session)

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

    def record_developer_log(self, room: str, participant: str, type: str, data: dict[str, Any]) -> None:
        self._developer_logs[room].append(DeveloperLogEntry(participant, type, data))

    def developer_logs(self, room: str) -> list[DeveloperLogEntry]:
        return list(self._developer_logs.get(room, ()))
