"""Who may use the admin HTTP APIs (timeline, export, reset, faults): a project's API key.

A participant token speaks for one participant of one room, not for the project, so it gets
403; a missing or unknown credential gets 401. Each answer says what was wrong.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi.responses import JSONResponse

from localmesh.protocol.tokens import AuthError, bearer_token

if TYPE_CHECKING:
    from starlette.requests import HTTPConnection

    from .state import EmulatorState


def error_response(status: int, message: str) -> JSONResponse:
    """``{"error": message}``, with the message in ``x-localmesh-reason`` too (ASCII-safe)."""
    reason = message.encode("ascii", "replace").decode()
    return JSONResponse({"error": message}, status_code=status, headers={"x-localmesh-reason": reason})


def project_namespace(state: EmulatorState, request: HTTPConnection, *, api: str) -> str | JSONResponse:
    """The namespace of the project whose API key the request carries, or the refusal to send.

    ``api`` names the API in the messages ("the admin API", "the faults API").
    """
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        return error_response(401, f"{api} needs 'Authorization: Bearer <the project API key>'")
    key = state.keyring.by_text(token)
    if key is not None:
        return state.keyring.namespace(key.key_id)
    if token.startswith("ma-"):
        return error_response(401, "this API key does not belong to a project of this emulator")
    try:
        state.verifier.verify(token)
    except AuthError as error:
        return error_response(401, f"the token was refused: {error}")
    return error_response(403, f"{api} needs the project's API key, not a participant token")
