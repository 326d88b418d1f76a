"""The Services view: each local service of a room, its state, restarts and recent output.

Services belong to the emulator (``state.services``: the registry, the supervisor that runs
them, their logs); a server without them shows no Services view.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..state import EmulatorState

LOG_LINES = 50  # recent output lines shown per service


def _services(state: EmulatorState) -> Any | None:
    return getattr(state, "services", None)


def services(state: EmulatorState, room: str, *, log_lines: int = LOG_LINES) -> dict[str, Any]:
    found = _services(state)
    if found is None:
        return {"available": False, "services": []}
    supervisor = found.supervisor
    shown = []
    for spec in supervisor.services_in(room):
        status = supervisor.state_of(room, spec.id)
        lines = found.logs.of(room, spec.id).lines()[-log_lines:] if log_lines else []
        shown.append({
            "id": spec.id, "name": spec.metadata.name, "state": status.get("state"),
            "restarts": status.get("restart_count", 0), "last_exit_code": status.get("last_exit_code"),
            "started_at": status.get("started_at"), "last_error": status.get("last_start_error"),
            "logs": [line.text for line in lines], "last_line": lines[-1].number if lines else 0,
        })
    return {"available": True, "services": shown}


def mark(state: EmulatorState, room: str) -> Any:
    """A value that changes when a service of the room changes state or writes a line."""
    if _services(state) is None:
        return None
    return [(s["id"], s["state"], s["restarts"], s["last_line"])
            for s in services(state, room, log_lines=1)["services"]]


def services_summary(state: EmulatorState, room: str) -> dict[str, Any] | None:
    """How many services the room has and how many run (None: the server has no services)."""
    if _services(state) is None:
        return None
    found = services(state, room, log_lines=0)["services"]
    return {"count": len(found), "running": sum(s["state"] == "running" for s in found)}
