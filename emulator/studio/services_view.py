"""The Services view: each local service of a room, its state, restarts and recent logs.

Services belong to the emulator's supervisor; a server without one shows no Services view.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..state import EmulatorState


def _supervisor(state: EmulatorState) -> Any | None:
    return getattr(state, "supervisor", None)


def mark(state: EmulatorState, room: str) -> Any:
    return None if _supervisor(state) is None else repr(services(state, room, log_lines=1))


def services(state: EmulatorState, room: str, *, log_lines: int = 50) -> dict[str, Any]:
    supervisor = _supervisor(state)
    if supervisor is None:
        return {"available": False, "services": []}
    return {"available": True, "services": []}
