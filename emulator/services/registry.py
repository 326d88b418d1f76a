"""Service semantics: create, read, update and delete specs per scope; no HTTP, no SQL.

A scope is a room name, or ``PROJECT`` for services that run in every active room. Names
are unique within a scope. Every change is validated against the spec and against what
this machine can run, and then announced to the listener (the supervisor).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Literal

from .images import LocalRuntime
from .launch import check_runnable
from .spec import ServiceSpec, SpecError, parse_spec
from .store import PROJECT, NameTaken, ServiceRow, ServiceStore

__all__ = ["PROJECT", "ServiceError", "ServiceRegistry"]

# (scope, service id, the new spec or None when deleted)
Listener = Callable[[str, str, ServiceSpec | None], Awaitable[None]]


class ServiceError(Exception):
    def __init__(self, kind: Literal["invalid", "not_found", "conflict"], message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def _scope_text(scope: str) -> str:
    return "the project" if scope == PROJECT else f"room {scope!r}"


def _now() -> str:
    return datetime.now(UTC).isoformat()


class ServiceRegistry:
    def __init__(self, store: ServiceStore, runtime: LocalRuntime) -> None:
        self._store = store
        self.runtime = runtime
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def _announce(self, scope: str, service_id: str, spec: ServiceSpec | None) -> None:
        for listener in self._listeners:
            await listener(scope, service_id, spec)

    def validate(self, body: Any) -> ServiceSpec:
        """A spec that is valid and runs here, or ``ServiceError('invalid')`` naming the field."""
        if isinstance(body, dict) and "template" in body and set(body) <= {"template", "values"}:
            raise ServiceError("invalid", (
                "service templates are not rendered by localmesh: render it with"
                " `meshagent service render-template` and create the Service it prints"))
        try:
            spec = parse_spec(body)
            check_runnable(spec, self.runtime)
        except SpecError as error:
            raise ServiceError("invalid", f"invalid service spec: {error}") from None
        return spec

    # ------------------------------------------------------------ reads

    async def list(self, scope: str) -> list[dict[str, Any]]:
        return [self._with_id(row) for row in await self._store.list(scope)]

    async def rows(self) -> list[ServiceRow]:
        return await self._store.all()

    async def get(self, scope: str, service_id: str) -> dict[str, Any]:
        row = await self._store.get(scope, service_id)
        if row is None:
            raise ServiceError("not_found", f"no service with id {service_id!r} in {_scope_text(scope)}")
        return self._with_id(row)

    async def by_name(self, scope: str, name: str) -> dict[str, Any]:
        row = await self._store.by_name(scope, name)
        if row is None:
            raise ServiceError("not_found", f"no service named {name!r} in {_scope_text(scope)}")
        return self._with_id(row)

    @staticmethod
    def _with_id(row: ServiceRow) -> dict[str, Any]:
        return {**row.spec, "id": row.id}

    # ------------------------------------------------------------ writes

    async def create(self, scope: str, body: Any) -> dict[str, Any]:
        spec = self.validate(body)
        if spec.id is not None:
            raise ServiceError("invalid", "invalid service spec: id: assigned by the server; leave it out")
        service_id = str(uuid.uuid4())
        stored = spec.to_json()
        try:
            await self._store.insert(service_id, scope, stored, _now())
        except NameTaken:
            raise self._name_taken(scope, spec.name) from None
        await self._announce(scope, service_id, spec)
        return {**stored, "id": service_id}

    async def update(self, scope: str, service_id: str, body: Any) -> dict[str, Any]:
        spec = self.validate(body)
        if spec.id is not None and spec.id != service_id:
            raise ServiceError("invalid", (
                f"invalid service spec: id: {spec.id!r} does not match the service being updated"
                f" ({service_id!r})"))
        stored = spec.model_copy(update={"id": None}).to_json()
        try:
            found = await self._store.update(service_id, scope, stored, _now())
        except NameTaken:
            raise self._name_taken(scope, spec.name) from None
        if not found:
            raise ServiceError("not_found", f"no service with id {service_id!r} in {_scope_text(scope)}")
        await self._announce(scope, service_id, spec)
        return {**stored, "id": service_id}

    async def delete(self, scope: str, service_id: str) -> None:
        if not await self._store.delete(scope, service_id):
            raise ServiceError("not_found", f"no service with id {service_id!r} in {_scope_text(scope)}")
        await self._announce(scope, service_id, None)

    @staticmethod
    def _name_taken(scope: str, name: str) -> ServiceError:
        return ServiceError("conflict", f"a service named {name!r} already exists in {_scope_text(scope)}")
