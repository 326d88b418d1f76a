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
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.requests import HTTPConnection

from .registry import PROJECT, ServiceError, ServiceRegistry
from .supervisor import Supervisor

_STATUS = {"invalid": 400, "not_found": 404, "conflict": 409}
OptionalRoom = str | None  # the room of a room-scope route; None for the project scope


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


@dataclass(frozen=True)
class ServicesAccess:
    """The services of the server a request reached, and how it recognises its project."""

    registry: ServiceRegistry
    supervisor: Supervisor
    project_id: Callable[[], str]
    is_api_key: Callable[[str | None], bool]


def create_services_router(access_of: Callable[[HTTPConnection], ServicesAccess]) -> APIRouter:
    """The routes; ``access_of(request)`` is the services of the server that received it
    (one app may serve several servers)."""
    router = APIRouter()

    def refused(request: Request, project: str | None) -> Response | None:
        access = access_of(request)
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not access.is_api_key(token.strip() or None):
            return _error(401, "the services API needs 'Authorization: Bearer <the local project's API key>'")
        if project is not None and project != access.project_id():
            return _error(404, f"no project {project!r} here; the local project is {access.project_id()!r}")
        return None

    async def answer(request: Request, project: str, operation: str, *args: Any) -> Response:
        if (refusal := refused(request, project)) is not None:
            return refusal
        action = getattr(_Answers(access_of(request).registry), operation)
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

    base = "/accounts/projects/{project}"
    _add_scope_routes(router, f"{base}/services", answer, room_scoped=False)
    _add_scope_routes(router, f"{base}/rooms/{{room}}/services", answer, room_scoped=True)

    @router.get("/_localmesh/services/logs")
    async def service_logs(request: Request, room: str, service: str, follow: bool = False,
                           after: int = 0) -> Response:
        if (refusal := refused(request, None)) is not None:
            return refusal
        supervisor = access_of(request).supervisor
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

    async def by_name(self, scope: str, name: str) -> Any:
        return await self.registry.by_name(scope, name)

    async def get(self, scope: str, service_id: str) -> Any:
        return await self.registry.get(scope, service_id)

    async def delete(self, scope: str, service_id: str) -> Any:
        return await self.registry.delete(scope, service_id)


def _add_scope_routes(
    router: APIRouter, prefix: str, answer: Callable[..., Any], *, room_scoped: bool,
) -> None:
    """The six routes of one scope; a room scope takes ``room`` from the path."""

    def scope_of(room: OptionalRoom) -> str:
        return room if room_scoped and room is not None else PROJECT

    @router.get(prefix)
    async def list_route(request: Request, project: str, room: OptionalRoom = None) -> Response:
        return await answer(request, project, "list", scope_of(room))

    @router.post(prefix)
    async def create_route(request: Request, project: str, room: OptionalRoom = None) -> Response:
        return await answer(request, project, "create", scope_of(room))

    @router.get(prefix + "/by-name/{name}")
    async def by_name_route(request: Request, project: str, name: str, room: OptionalRoom = None) -> Response:
        return await answer(request, project, "by_name", scope_of(room), name)

    @router.get(prefix + "/{service_id}")
    async def get_route(
        request: Request, project: str, service_id: str, room: OptionalRoom = None,
    ) -> Response:
        return await answer(request, project, "get", scope_of(room), service_id)

    @router.put(prefix + "/{service_id}")
    async def update_route(
        request: Request, project: str, service_id: str, room: OptionalRoom = None,
    ) -> Response:
        return await answer(request, project, "update", scope_of(room), service_id)

    @router.delete(prefix + "/{service_id}")
    async def delete_route(
        request: Request, project: str, service_id: str, room: OptionalRoom = None,
    ) -> Response:
        return await answer(request, project, "delete", scope_of(room), service_id)
