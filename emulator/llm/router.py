"""The scripted LLM as a FastAPI router: the providers' endpoints, the Responses websocket and
the admin API."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import JSONResponse, Response
from starlette.requests import HTTPConnection

from localmesh.scripted_llm import responses
from localmesh.scripted_llm.errors import AuthError, ScriptedError, ScriptError
from localmesh.scripted_llm.player import Reply
from localmesh.scripted_llm.script import loads_script

from .bodies import parse_request
from .caller import Caller
from .endpoints import add_provider_routes
from .hub import LLMHub

# Takes the request's Authorization header value (None when it has none).
Authenticate = Callable[[str | None], Awaitable[Caller]]


class Backend(Protocol):
    """What the endpoints serve (``EmulatorState``): the rooms' players, who may ask, and how
    big a request may be."""

    llm: LLMHub

    @property
    def llm_max_body_bytes(self) -> int: ...

    async def llm_caller(self, authorization: str | None) -> Caller: ...


# The backend of the server that received a request (one app can serve several servers).
BackendOf = Callable[[HTTPConnection], Backend]
ROOM_HEADER = "x-localmesh-room"
DEFAULT_ROOM = "default"
RESPONSES_PATH = "/openai/v1/responses"
ADMIN_PREFIX = "/_localmesh/llm/rooms/{room}"


def _openai_error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
    return JSONResponse(body, status_code=status, headers=headers)


def credential(headers: Mapping[str, str]) -> str | None:
    """The Authorization value to check: the bearer token, else ``x-api-key`` (what Anthropic
    clients send) as a bearer token, as MeshAgent's LLM proxy reads them."""
    authorization = headers.get("authorization")
    if authorization is not None and authorization.lower().startswith("bearer "):
        return authorization
    api_key = (headers.get("x-api-key") or "").strip()
    return f"Bearer {api_key}" if api_key else authorization


def create_llm_router(backend_of: BackendOf) -> APIRouter:
    """Serve ``backend_of(request).llm`` under ``/openai/v1``, ``/anthropic`` and ``/grok/v1``
    (see ``endpoints.py``), and the admin API under ``/_localmesh/llm/...``.

    ``backend.llm_caller(authorization_header_or_None)`` returns the ``Caller``: a
    participant token's room, or, for a local API key, its project (the room then comes from
    the ``X-Localmesh-Room`` header, else ``"default"``); it raises ``AuthError`` for a
    refused token. LLM requests may carry the token as ``x-api-key`` instead. The admin API
    requires an API key, and reaches the rooms of its project.
    """
    router = APIRouter()

    async def player_of(connection: HTTPConnection) -> tuple[LLMHub, str, str | None]:
        """The hub of the server that got the request, the room (key) it speaks for, and
        the participant who sent it (None for an API key)."""
        backend, headers = backend_of(connection), connection.headers
        caller = await backend.llm_caller(credential(headers))
        if caller.room is not None:
            return backend.llm, caller.room, caller.participant
        return backend.llm, caller.scope(headers.get(ROOM_HEADER) or DEFAULT_ROOM), None

    add_provider_routes(router, player_of, lambda connection: backend_of(connection).llm_max_body_bytes)

    async def admin_room(request: Request, room: str) -> str | JSONResponse:
        """The key of ``room`` for the API key's project, or the refusal to answer with."""
        try:
            caller = await backend_of(request).llm_caller(request.headers.get("authorization"))
        except AuthError as error:
            return _openai_error(401, str(error))
        if caller.room is not None:
            return _openai_error(403, "the localmesh admin API needs the local API key, not a room token")
        return caller.scope(room)

    @router.websocket(RESPONSES_PATH)
    async def responses_socket(websocket: WebSocket) -> None:
        try:
            hub, room, participant = await player_of(websocket)
        except AuthError as error:
            await _deny(websocket, str(error))
            return
        await websocket.accept()
        conversation: str | None = None  # one socket is one conversation
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            body = _create_request(message.get("text"))
            if isinstance(body, ScriptedError):
                await websocket.send_text(json.dumps(responses.error_event(body, websocket=True)))
                continue
            player = hub.player(room)
            reply = player.play(body, conversation, transport="websocket", participant=participant)
            conversation = conversation or reply.conversation
            if reply.delay:
                await player.sleep(reply.delay)
            if reply.dropped:
                await websocket.close(code=1011, reason="localmesh: scripted drop")
                return
            for event in _socket_events(reply):
                await websocket.send_text(json.dumps(event, ensure_ascii=False))

    @router.put(ADMIN_PREFIX + "/script")
    async def put_script(room: str, request: Request, name: str | None = None) -> Response:
        key = await admin_room(request, room)
        if isinstance(key, Response):
            return key
        text = (await request.body()).decode("utf-8", errors="replace")
        try:
            script = loads_script(text, name or f"the script for room {room!r}")
        except ScriptError as error:
            return _openai_error(400, str(error))
        backend_of(request).llm.set_script(key, script)
        return JSONResponse(
            {"room": room, "rules": len(script.rules), "fallback": script.fallback is not None}
        )

    @router.delete(ADMIN_PREFIX + "/script")
    async def delete_script(room: str, request: Request) -> Response:
        key = await admin_room(request, room)
        if isinstance(key, Response):
            return key
        backend_of(request).llm.set_script(key, None)
        return Response(status_code=204)

    @router.get(ADMIN_PREFIX + "/transcript")
    async def get_transcript(room: str, request: Request, conversation: str | None = None) -> Response:
        key = await admin_room(request, room)
        if isinstance(key, Response):
            return key
        entries = [e.to_dict() for e in backend_of(request).llm.transcript(key, conversation)]
        return JSONResponse({"room": room, "entries": entries})

    @router.get(ADMIN_PREFIX + "/failures")
    async def get_failures(room: str, request: Request) -> Response:
        key = await admin_room(request, room)
        if isinstance(key, Response):
            return key
        hub = backend_of(request).llm
        failures = [{"rule": f.rule, "entry": f.entry, "turn": f.turn, "conversation": f.conversation,
                     "kind": f.kind, "message": f.message, "text": str(f)}
                    for f in hub.failures_for(key) if f.room == room]
        return JSONResponse({"room": room, "failures": failures})

    @router.delete(ADMIN_PREFIX + "/transcript")
    async def delete_transcript(room: str, request: Request) -> Response:
        key = await admin_room(request, room)
        if isinstance(key, Response):
            return key
        backend_of(request).llm.clear_transcript(key)
        return Response(status_code=204)

    return router


def _create_request(text: str | None) -> dict[str, Any] | ScriptedError:
    """The body of a ``response.create`` frame, or the error to send back."""
    if text is None:
        return ScriptedError(400, "localmesh: send response.create as a TEXT frame", fatal=True)
    payload = parse_request(text, "localmesh: the frame is not JSON")
    if isinstance(payload, ScriptedError):
        return payload
    if payload.get("type") != "response.create":
        kind = payload.get("type")
        return ScriptedError(
            400,
            f"localmesh: unsupported event type {kind!r}, expected 'response.create'",
            fatal=True,
        )
    return payload


def _socket_events(reply: Reply) -> list[dict[str, Any]]:
    if reply.error is not None:
        return [responses.error_event(reply.error, websocket=True)]
    assert reply.response is not None
    return responses.stream_events(reply.response)


async def _deny(websocket: WebSocket, message: str) -> None:
    """Refuse the upgrade: a 401 with a JSON body where the server supports it, else 403."""
    try:
        await websocket.send_denial_response(_openai_error(401, message))
    except RuntimeError:
        await websocket.close(code=1008, reason=message[:120])
