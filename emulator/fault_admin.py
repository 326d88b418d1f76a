"""The faults over HTTP, for tests and tools outside the server's process (``localmesh fault``).

    POST   /_localmesh/faults        {"kind": "error", "toolkit": "queues", ...} -> 201 the fault
    GET    /_localmesh/faults        -> {"faults": [...]}, each with its seen and fired counts
    GET    /_localmesh/faults/{id}   -> the fault
    DELETE /_localmesh/faults/{id}   -> 204, or 404
    DELETE /_localmesh/faults        -> 204: every fault removed

Only the project API key may use it (``Authorization: Bearer ma-...``): a participant token is
refused with 403, anything else with 401.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from localmesh.emulator.faults import ADMIN_PATH
from localmesh.protocol.tokens import AuthError, bearer_token

if TYPE_CHECKING:
    from localmesh.emulator.state import EmulatorState

PREFIX = ADMIN_PATH


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status,
                        headers={"x-localmesh-reason": message.encode("ascii", "replace").decode()})


def create_fault_router(state: EmulatorState) -> APIRouter:
    router = APIRouter(prefix=PREFIX)

    def denied(request: Request) -> JSONResponse | None:
        token = bearer_token(request.headers.get("authorization"))
        if token is None:
            return _error(401, "send 'Authorization: Bearer <the project API key>'")
        if state.is_api_key(token):
            return None
        try:
            state.verifier.verify(token)
        except AuthError:
            return _error(401, "not the local project's API key")
        return _error(403, "faults are managed with the project API key, not a participant token")

    @router.post("")
    async def add(request: Request) -> Response:
        if (refusal := denied(request)) is not None:
            return refusal
        try:
            body = await request.json()
        except ValueError as error:
            return _error(400, f"the body must be a JSON object: {error}")
        if not isinstance(body, dict) or not isinstance(body.get("kind"), str):
            return _error(400, 'the body must be a JSON object with a "kind"')
        options: dict[str, Any] = dict(body)
        kind = options.pop("kind")
        try:
            fault = state.faults.add(kind, **options)
        except (TypeError, ValueError) as error:
            return _error(400, str(error))
        return JSONResponse(fault.to_json(), status_code=201)

    @router.get("")
    async def listing(request: Request) -> Response:
        if (refusal := denied(request)) is not None:
            return refusal
        return JSONResponse({"faults": [fault.to_json() for fault in state.faults.all(include_spent=True)]})

    @router.get("/{ident}")
    async def one(ident: int, request: Request) -> Response:
        if (refusal := denied(request)) is not None:
            return refusal
        fault = state.faults.get(ident)
        if fault is None:
            return _error(404, f"no fault #{ident}")
        return JSONResponse(fault.to_json())

    @router.delete("/{ident}")
    async def remove(ident: int, request: Request) -> Response:
        if (refusal := denied(request)) is not None:
            return refusal
        if not state.faults.remove(ident):
            return _error(404, f"no fault #{ident}")
        return Response(status_code=204)

    @router.delete("")
    async def clear(request: Request) -> Response:
        if (refusal := denied(request)) is not None:
            return refusal
        state.faults.clear()
        return Response(status_code=204)

    return router
