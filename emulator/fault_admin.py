"""The faults over HTTP, for tests and tools outside the server's process (``localmesh fault``).

    POST   /_localmesh/faults        {"kind": "error", "toolkit": "queues", ...} -> 201 the fault
    GET    /_localmesh/faults        -> {"faults": [...]}, each with its seen and fired counts
    GET    /_localmesh/faults/{id}   -> the fault
    DELETE /_localmesh/faults/{id}   -> 204, or 404
    DELETE /_localmesh/faults        -> 204: every fault removed

Only a project API key may use it (``Authorization: Bearer ma-...``): a participant token is
refused with 403, anything else with 401. A key reaches its own project's faults only: rooms
are its rooms, and what it adds aims at them alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from localmesh.emulator.admin_auth import error_response, project_namespace
from localmesh.emulator.faults import ADMIN_PATH
from localmesh.emulator.namespaces import check_room_name, room_key

if TYPE_CHECKING:
    from collections.abc import Callable

    from starlette.requests import HTTPConnection

    from localmesh.emulator.state import EmulatorState

PREFIX = ADMIN_PATH


def create_fault_router(state_of: Callable[[HTTPConnection], EmulatorState]) -> APIRouter:
    """The routes; ``state_of(request)`` is the state of the server that received it."""
    router = APIRouter(prefix=PREFIX)

    def namespace_of(request: Request) -> str | JSONResponse:
        """The project of the request's API key, or the refusal to answer with."""
        return project_namespace(state_of(request), request, api="the faults API")

    @router.post("")
    async def add(request: Request) -> Response:
        state = state_of(request)
        namespace = namespace_of(request)
        if isinstance(namespace, Response):
            return namespace
        try:
            body = await request.json()
        except ValueError as error:
            return error_response(400, f"the body must be a JSON object: {error}")
        if not isinstance(body, dict) or not isinstance(body.get("kind"), str):
            return error_response(400, 'the body must be a JSON object with a "kind"')
        options: dict[str, Any] = dict(body)
        kind = options.pop("kind")
        options.pop("namespace", None)  # a key's faults aim at its own project's rooms
        try:
            if isinstance(options.get("room"), str):
                options["room"] = room_key(namespace, check_room_name(options["room"]))
            fault = state.faults.add(kind, namespace=namespace or None, **options)
        except (TypeError, ValueError) as error:
            return error_response(400, str(error))
        return JSONResponse(fault.to_json(), status_code=201)

    def project_fault(request: Request, ident: int) -> Any:
        """The fault ``ident`` of the key's project, or the refusal to answer with."""
        namespace = namespace_of(request)
        if isinstance(namespace, Response):
            return namespace
        fault = state_of(request).faults.get(ident)
        if fault is None or not fault.belongs_to(namespace):
            return error_response(404, f"no fault #{ident}")
        return fault

    @router.get("")
    async def listing(request: Request) -> Response:
        namespace = namespace_of(request)
        if isinstance(namespace, Response):
            return namespace
        faults = state_of(request).faults.all(include_spent=True)
        return JSONResponse({"faults": [f.to_json() for f in faults if f.belongs_to(namespace)]})

    @router.get("/{ident}")
    async def one(ident: int, request: Request) -> Response:
        fault = project_fault(request, ident)
        return fault if isinstance(fault, Response) else JSONResponse(fault.to_json())

    @router.delete("/{ident}")
    async def remove(ident: int, request: Request) -> Response:
        fault = project_fault(request, ident)
        if isinstance(fault, Response):
            return fault
        state_of(request).faults.remove(ident)
        return Response(status_code=204)

    @router.delete("")
    async def clear(request: Request) -> Response:
        namespace = namespace_of(request)
        if isinstance(namespace, Response):
            return namespace
        state_of(request).faults.clear(lambda fault: fault.belongs_to(namespace))
        return Response(status_code=204)

    return router
