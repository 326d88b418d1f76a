"""Who may do what in room storage: one check for the websocket toolkit and the files API."""

from __future__ import annotations

from typing import Any

from ..protocol.grants import parse_api_scope
from ..protocol.tokens import Participant
from .errors import PERMISSION_DENIED, RoomError

FILE_ACTIONS = ("list", "read", "write", "delete", "presign")


def require_storage(participant: Participant, action: str, path: str, subtree: bool = False) -> None:
    """Raise 1001 unless the participant's ``api.storage`` grant allows ``action`` at ``path``
    (and, with ``subtree``, everywhere below it)."""
    grant = participant.api.storage
    if grant is None:
        raise RoomError(
            PERMISSION_DENIED,
            f"participant {participant.name!r} has no api.storage grant, so it may not use storage",
        )
    if not grant.allows(action, path, subtree):
        where = f"{path!r}" + (" and below" if subtree else "")
        raise RoomError(
            PERMISSION_DENIED,
            f"participant {participant.name!r} may not {action} {where} (api.storage grant)",
        )


def require_presign(participant: Participant, path: str) -> None:
    """Presigning needs ``presign`` where a ``files`` policy is given (as the SDK's
    ``StorageGrant.can_presign`` says); legacy path rules have no presign action, so under
    them a readable file may be presigned."""
    grant = participant.api.storage
    require_storage(participant, "presign" if grant is not None and grant.names_presign else "read", path)


def permissions(participant: Participant, path: str) -> dict[str, list[str]]:
    """The actions allowed at ``path`` and on its whole subtree (the files API's
    ``?permissions`` answer)."""
    grant = participant.api.storage
    if grant is None:
        return {"actions": [], "recursive_actions": []}
    return {
        "actions": [a for a in FILE_ACTIONS if grant.allows(a, path)],
        "recursive_actions": [a for a in FILE_ACTIONS if grant.allows(a, path, subtree=True)],
    }


def owner_scope() -> dict[str, Any]:
    """The storage section of the project owner (a request made with the API key)."""
    return {"files": {"paths": [{"path": "", "recursive": True, "actions": list(FILE_ACTIONS)}]}}


def project_owner(room: str, project_id: str) -> Participant:
    """The participant an API-key request acts as: every storage action in every room."""
    return Participant(
        name="api-key", room=room, role="user", api=parse_api_scope({"storage": owner_scope()}),
        project_id=project_id, claims={},
    )
