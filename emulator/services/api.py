"""HTTP routes: the accounts ``services`` API the real CLI calls, and the service logs.

    /accounts/projects/{p}/services[/{id}|/by-name/{name}]               project services
    /accounts/projects/{p}/rooms/{room}/services[/{id}|/by-name/{name}]  room services
    /_localmesh/services/logs?room=R&service=NAME_OR_ID[&follow=true]    a service's output

Answers are what the CLI reads: a room create gives ``{"id"}``, a project create or update
the whole spec; errors are ``{"detail": "..."}`` with 400 (invalid spec, naming the field),
401 (no or unknown API key), 404 (unknown project or service), 409 (name taken).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from .registry import PROJECT, ServiceError, ServiceRegistry
from .supervisor import Supervisor

_STATUS = {"invalid": 400, "not_found": 404, "conflict": 409}
OptionalRoom = str | None  # the room of a room-scope route; None for the project scope


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def create_services_router(
    registry: ServiceRegistry,
    supervisor: Supervisor,
    *,
    project_id: Callable[[], str],
    is_api_key: Callable[[str | None], bool],
) -> APIRouter:
    router = APIRouter()

    def refused(request: Request, project: str | None) -> Response | None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not is_api_key(token.strip() or None):
            return _error(401, "the services API needs 'Authorization: Bearer <the local project's API key>'")
        if project is not None and project != project_id():
            return _error(404, f"no project {project!r} here; the local project is {project_id()!r}")
        return None

    async def answer(request: Request, project: str, action: Callable[..., Any], *args: Any) -> Response:
        if (refusal := refused(request, project)) is not None:
            return refusal
        try:
            if request.method in ("POST", "PUT"):
                try:
                    body = await request.json()
                except ValueError:
                    return _error(400, "the body must be a JSON service spec")
                args = (*args, body)
            result = await action(*args)
        except ServiceError as error:
            return _error(_STATUS[error.kind], error.message)
        return JSONResponse({} if result is None else result)

    async def list_services(scope: str) -> dict[str, Any]:
        return {"services": await registry.list(scope)}

    async def create_in_room(room: str, body: Any) -> dict[str, Any]:
        return {"id": (await registry.create(room, body))["id"]}

    async def update_in_room(room: str, service_id: str, body: Any) -> dict[str, Any]:
        await registry.update(room, service_id, body)
        return {}

    base = "/accounts/projects/{project}"
    for prefix, scoped in ((f"{base}/services", False), (f"{base}/rooms/{{room}}/services", True)):
        _add_scope_routes(router, prefix, scoped, answer, registry, list_services,
                          create_in_room, update_in_room)

    @router.get("/_localmesh/services/logs")
    async def service_logs(request: Request, room: str, service: str, follow: bool = False,
                           after: int = 0) -> Response:
        if (refusal := refused(request, None)) is not None:
            return refusal
        spec = supervisor.find(room, service)
        if spec is None or spec.id is None:
            return _error(404, f"no service {service!r} in room {room!r} (nor in the project)")
        log = supervisor.logs.of(room, spec.id)

        async def lines() -> AsyncIterator[bytes]:
            if follow:
                async for line in log.follow(after):
                    yield (line.text + "\n").encode()
            else:
                for line in log.lines(after):
                    yield (line.text + "\n").encode()

        return StreamingResponse(lines(), media_type="text/plain; charset=utf-8")

    return router


def _add_scope_routes(
    router: APIRouter, prefix: str, scoped: bool, answer: Callable[..., Any], registry: ServiceRegistry,
    list_services: Callable[..., Any], create_in_room: Callable[..., Any], update_in_room: Callable[..., Any],
) -> None:
    """The six routes of one scope; a room scope takes ``room`` from the path."""

    def scope_of(room: str | None) -> str:
        return room if scoped and room is not None else PROJECT

    @router.get(prefix)
    async def list_route(request: Request, project: str, room: str | None = None) -> Response:
        return await answer(request, project, list_services, scope_of(room))

    @router.post(prefix)
    async def create_route(request: Request, project: str, room: str | None = None) -> Response:
        if scoped:
            return await answer(request, project, create_in_room, scope_of(room))
        return await answer(request, project, registry.create, PROJECT)

    @router.get(prefix + "/by-name/{name}")
    async def by_name_route(request: Request, project: str, name: str, room: OptionalRoom = None) -> Response:
        return await answer(request, project, registry.by_name, scope_of(room), name)

    @router.get(prefix + "/{service_id}")
    async def get_route(
        request: Request, project: str, service_id: str, room: OptionalRoom = None,
    ) -> Response:
        return await answer(request, project, registry.get, scope_of(room), service_id)

    @router.put(prefix + "/{service_id}")
    async def update_route(
        request: Request, project: str, service_id: str, room: OptionalRoom = None,
    ) -> Response:
        if scoped:
            return await answer(request, project, update_in_room, scope_of(room), service_id)
        return await answer(request, project, registry.update, PROJECT, service_id)

    @router.delete(prefix + "/{service_id}")
    async def delete_route(
        request: Request, project: str, service_id: str, room: OptionalRoom = None,
    ) -> Response:
        return await answer(request, project, registry.delete, scope_of(room), service_id)
