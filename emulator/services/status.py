"""What a running service looks like from the room: its state, ports and lifecycle events.

Shaped like the real room's service controller reports it (the ``services`` toolkit's
``service_states``), so ``meshagent room service list|describe`` read it unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_EVENTS = 30


@dataclass
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str
    count: int
    first_timestamp: float
    last_timestamp: float


@dataclass
class PortStatus:
    num: int
    liveness: str | None
    liveness_status: str = "not_configured"  # not_configured | not_ready | ready
    last_checked_at: float | None = None
    last_error: str | None = None


@dataclass
class ServiceStatus:
    service_id: str
    clock: Callable[[], float]
    state: str = "starting"
    container_id: str | None = None
    started_at: float | None = None
    restart_scheduled_at: float | None = None
    restart_count: int = 0
    last_exit_code: int | None = None
    last_exit_at: float | None = None
    last_start_error: str | None = None
    last_start_error_at: float | None = None
    ports: list[PortStatus] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def event(self, type: str, reason: str, message: str) -> None:
        """Record an event; a repeat of the last one only bumps its count."""
        now = self.clock()
        last = self.events[-1] if self.events else None
        if last and (last.type, last.reason, last.message) == (type, reason, message):
            last.count += 1
            last.last_timestamp = now
            return
        self.events.append(Event(type, reason, message, 1, now, now))
        del self.events[:-MAX_EVENTS]

    def start_error(self, message: str) -> None:
        self.last_start_error = message
        self.last_start_error_at = self.clock()
        self.event("Warning", "FailedStart", message)

    def to_json(self) -> dict[str, Any]:
        return {
            "service_id": self.service_id,
            "state": self.state,
            "container_id": self.container_id,
            "restart_scheduled_at": self.restart_scheduled_at,
            "started_at": self.started_at,
            "restart_count": self.restart_count,
            "last_exit_code": self.last_exit_code,
            "last_exit_at": self.last_exit_at,
            "last_start_error": self.last_start_error,
            "last_start_error_at": self.last_start_error_at,
            "status": {"ports": [vars(port).copy() for port in self.ports]},
            "events": [vars(event).copy() for event in self.events],
        }
