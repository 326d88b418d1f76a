"""The admin HTTP API: a project's timeline, a snapshot of its rooms, a reset.

Every route needs a project API key (``Authorization: Bearer ma-...``) and reaches only
that project's rooms. A participant token gets 403: it speaks for one participant of one
room, not for the project.

    GET  /_localmesh/timeline?room=R&kind=K&participant=P&since=SEQ&limit=N&wait=S
    GET  /_localmesh/export          the project's rooms as a tar of an export directory
    POST /_localmesh/reset?room=R    forget one room (or every room of the project)
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from .admin_auth import error_response, project_namespace
from .namespaces import check_room_name, in_namespace, room_key, room_name
from .snapshot import take_snapshot

if TYPE_CHECKING:
    from collections.abc import Callable

    from starlette.requests import HTTPConnection

    from .state import EmulatorState

MAX_WAIT = 30.0  # seconds a timeline request may wait for news
DEFAULT_LIMIT = 200


def create_admin_router(state_of: Callable[[HTTPConnection], EmulatorState]) -> APIRouter:
    """The admin routes; ``state_of(request)`` is the state of the server that received it."""
    router = APIRouter()

    def namespace_of(request: Request) -> str | JSONResponse:
        return project_namespace(state_of(request), request, api="the admin API")

    def project_and_room(request: Request) -> tuple[str, str | None] | JSONResponse:
        """The caller's project namespace and the ``room`` query's key (None: every room)."""
        namespace = namespace_of(request)
        if isinstance(namespace, Response):
            return namespace
        room = request.query_params.get("room")
        if room is None:
            return namespace, None
        try:
            return namespace, room_key(namespace, check_room_name(room))
        except ValueError as error:
            return error_response(400, str(error))

    @router.get("/_localmesh/timeline")
    async def timeline(request: Request) -> Response:
        state = state_of(request)
        scope = project_and_room(request)
        if isinstance(scope, Response):
            return scope
        namespace, key = scope
        try:
            since = int(request.query_params.get("since", 0))
            limit = int(request.query_params.get("limit", DEFAULT_LIMIT))
            wait = min(float(request.query_params.get("wait", 0)), MAX_WAIT)
        except ValueError:
            return error_response(400, "since and limit are whole numbers, wait is seconds")
        rooms = in_namespace(namespace) if key is None else (lambda k: k == key)
        kind = request.query_params.get("kind")
        participant = request.query_params.get("participant")

        def select():
            return state.timeline.events(rooms, kind=kind, participant=participant, since=since)

        events = select()
        if not events and wait > 0:
            # Long-poll: answer as soon as something happens (a follower's next page).
            deadline = asyncio.get_running_loop().time() + wait
            last = state.timeline.last_seq
            while not events and (left := deadline - asyncio.get_running_loop().time()) > 0:
                await state.timeline.wait_after(last, left)
                last = state.timeline.last_seq
                events = select()
        events = events[-limit:] if limit > 0 else []
        return JSONResponse({
            "room": None if key is None else room_name(key),
            "last": events[-1].seq if events else max(since, 0),
            "events": [{**event.to_dict(), "line": event.line()} for event in events],
        })

    @router.get("/_localmesh/export")
    async def export(request: Request) -> Response:
        state = state_of(request)
        namespace = namespace_of(request)
        if isinstance(namespace, Response):
            return namespace
        keys = await state.store.room_keys(namespace)
        project_keys = [k for k in state.keys if state.keyring.namespace(k.key_id) == namespace]
        snapshot = await take_snapshot(state.store, {room_name(k): k for k in keys}, project_keys)
        return Response(snapshot.to_tar(), media_type="application/x-tar")

    @router.post("/_localmesh/reset")
    async def reset(request: Request) -> Response:
        state = state_of(request)
        scope = project_and_room(request)
        if isinstance(scope, Response):
            return scope
        namespace, key = scope
        if key is None:
            await state.reset(in_namespace(namespace), namespace=namespace)
        else:
            await state.reset(lambda k: k == key, room=key)
        return Response(status_code=204)

    return router
