"""The scripted LLM as a FastAPI router: the providers' endpoints, the Responses websocket and
the admin API."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import JSONResponse, Response

from localmesh.scripted_llm import responses
from localmesh.scripted_llm.errors import AuthError, ScriptedError, ScriptError
from localmesh.scripted_llm.player import Reply
from localmesh.scripted_llm.script import loads_script

from .bodies import DEFAULT_MAX_BODY_BYTES, parse_request
from .endpoints import add_provider_routes
from .hub import LLMHub

# Takes the request's Authorization header value (None when it has none).
Authenticate = Callable[[str | None], Awaitable[str | None]]
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


def create_llm_router(
    hub: LLMHub, authenticate: Authenticate, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
) -> APIRouter:
    """Serve ``hub`` under ``/openai/v1``, ``/anthropic`` and ``/grok/v1`` (see
    ``endpoints.py``), and the admin API under ``/_localmesh/llm/...``.

    ``authenticate(authorization_header_or_None)`` returns the bearer token's room, or ``None``
    for the local API key (the room then comes from the ``X-Localmesh-Room`` header, else
    ``"default"``), and raises ``AuthError`` for a refused token. LLM requests may carry the
    token as ``x-api-key`` instead. The admin API requires the local API key.
    """
    router = APIRouter()

    async def room_of(headers: Mapping[str, str]) -> str:
        room = await authenticate(credential(headers))
        return room if room is not None else headers.get(ROOM_HEADER) or DEFAULT_ROOM

    add_provider_routes(router, hub, room_of, max_body_bytes=max_body_bytes)

    async def admin_denied(request: Request) -> JSONResponse | None:
        try:
            room = await authenticate(request.headers.get("authorization"))
        except AuthError as error:
            return _openai_error(401, str(error))
        if room is not None:
            return _openai_error(403, "the localmesh admin API needs the local API key, not a room token")
        return None

    @router.websocket(RESPONSES_PATH)
    async def responses_socket(websocket: WebSocket) -> None:
        try:
            room = await room_of(websocket.headers)
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
            reply = player.play(body, conversation, transport="websocket")
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
        if (denied := await admin_denied(request)) is not None:
            return denied
        text = (await request.body()).decode("utf-8", errors="replace")
        try:
            script = loads_script(text, name or f"the script for room {room!r}")
        except ScriptError as error:
            return _openai_error(400, str(error))
        hub.set_script(room, script)
        return JSONResponse(
            {"room": room, "rules": len(script.rules), "fallback": script.fallback is not None}
        )

    @router.delete(ADMIN_PREFIX + "/script")
    async def delete_script(room: str, request: Request) -> Response:
        if (denied := await admin_denied(request)) is not None:
            return denied
        hub.set_script(room, None)
        return Response(status_code=204)

    @router.get(ADMIN_PREFIX + "/transcript")
    async def get_transcript(room: str, request: Request, conversation: str | None = None) -> Response:
        if (denied := await admin_denied(request)) is not None:
            return denied
        entries = [e.to_dict() for e in hub.transcript(room, conversation)]
        return JSONResponse({"room": room, "entries": entries})

    @router.get(ADMIN_PREFIX + "/failures")
    async def get_failures(room: str, request: Request) -> Response:
        if (denied := await admin_denied(request)) is not None:
            return denied
        failures = [{"rule": f.rule, "entry": f.entry, "turn": f.turn, "conversation": f.conversation,
                     "kind": f.kind, "message": f.message, "text": str(f)}
                    for f in hub.failures if f.room == room]
        return JSONResponse({"room": room, "failures": failures})

    @router.delete(ADMIN_PREFIX + "/transcript")
    async def delete_transcript(room: str, request: Request) -> Response:
        if (denied := await admin_denied(request)) is not None:
            return denied
        hub.clear_transcript(room)
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
