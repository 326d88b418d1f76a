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

    answers = _Answers(registry)
    base = "/accounts/projects/{project}"
    _add_scope_routes(router, f"{base}/services", answer, answers, room_scoped=False)
    _add_scope_routes(router, f"{base}/rooms/{{room}}/services", answer, answers, room_scoped=True)

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


class _Answers:
    """What each call answers. As the real server does (and the CLI reads): a room create
    answers ``{"id"}`` and a room update ``{}``; a project create or update the whole spec."""

    def __init__(self, registry: ServiceRegistry) -> None:
        self.registry = registry

    async def list(self, scope: str) -> dict[str, Any]:
        return {"services": await self.registry.list(scope)}

    async def create(self, scope: str, body: Any) -> dict[str, Any]:
        created = await self.registry.create(scope, body)
        return created if scope == PROJECT else {"id": created["id"]}

    async def update(self, scope: str, service_id: str, body: Any) -> dict[str, Any]:
        updated = await self.registry.update(scope, service_id, body)
        return updated if scope == PROJECT else {}


def _add_scope_routes(
    router: APIRouter, prefix: str, answer: Callable[..., Any], answers: _Answers, *, room_scoped: bool,
) -> None:
    """The six routes of one scope; a room scope takes ``room`` from the path."""
    registry = answers.registry

    def scope_of(room: OptionalRoom) -> str:
        return room if room_scoped and room is not None else PROJECT

    @router.get(prefix)
    async def list_route(request: Request, project: str, room: OptionalRoom = None) -> Response:
        return await answer(request, project, answers.list, scope_of(room))

    @router.post(prefix)
    async def create_route(request: Request, project: str, room: OptionalRoom = None) -> Response:
        return await answer(request, project, answers.create, scope_of(room))

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
        return await answer(request, project, answers.update, scope_of(room), service_id)

    @router.delete(prefix + "/{service_id}")
    async def delete_route(
        request: Request, project: str, service_id: str, room: OptionalRoom = None,
    ) -> Response:
        return await answer(request, project, registry.delete, scope_of(room), service_id)
