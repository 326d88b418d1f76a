"""The LLM proxy's HTTP endpoints: one route per provider and API, all played by one engine.

Like MeshAgent's LLM proxy, the providers live under the API URL: ``/openai/v1``,
``/anthropic`` and ``/grok/v1``. Each endpoint only picks the wire format and the provider
name; the room's player answers. Anything else under those prefixes gets the provider's
error shape, saying what localmesh serves there.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.requests import HTTPConnection
from starlette.types import Receive, Scope, Send

from localmesh.scripted_llm.errors import AuthError, ScriptedError
from localmesh.scripted_llm.providers import ANTHROPIC_MESSAGES, CHAT_COMPLETIONS, RESPONSES, WireFormat
from localmesh.scripted_llm.responses import HttpReply
from localmesh.scripted_llm.transport import answer_http

from .bodies import DEFAULT_MAX_BODY_BYTES, BodyTooLarge, parse_request, read_body
from .hub import LLMHub

# The hub of the server a request reached and the room it speaks for; raises AuthError to
# refuse it.
# The hub, the room (key) and the participant (None for an API key) a request speaks for.
PlayerOf = Callable[[HTTPConnection], Awaitable[tuple[LLMHub, str, str | None]]]
# The most bytes a request body may have on the server it reached.
BodyLimitOf = Callable[[HTTPConnection], int]
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@dataclass(frozen=True)
class Endpoint:
    path: str
    provider: str  # openai | anthropic | grok: what transcripts and `match.provider` see
    wire: WireFormat


ENDPOINTS = (
    Endpoint("/openai/v1/responses", "openai", RESPONSES),
    Endpoint("/openai/v1/chat/completions", "openai", CHAT_COMPLETIONS),
    Endpoint("/anthropic/v1/messages", "anthropic", ANTHROPIC_MESSAGES),
    # MeshAgent's proxy serves grok-* models both ways: Responses, and Anthropic's Messages.
    Endpoint("/grok/v1/responses", "grok", RESPONSES),
    Endpoint("/grok/v1/messages", "grok", ANTHROPIC_MESSAGES),
)
COUNT_TOKENS = ("/anthropic/v1/messages/count_tokens", "/grok/v1/messages/count_tokens")


@dataclass(frozen=True)
class Prefix:
    path: str
    wire: WireFormat  # whose error shape answers an unknown path
    serves: str


PREFIXES = (
    Prefix("/openai/v1", RESPONSES,
           "POST /openai/v1/responses (JSON, SSE, and websocket) and POST /openai/v1/chat/completions"),
    Prefix("/anthropic", ANTHROPIC_MESSAGES,
           "POST /anthropic/v1/messages (JSON and SSE) and POST /anthropic/v1/messages/count_tokens"),
    Prefix("/grok/v1", RESPONSES,
           "POST /grok/v1/responses and POST /grok/v1/messages "
           "(the two ways MeshAgent's proxy serves grok-* models)"),
)


class _DroppedResponse(Response):
    """Starts a 200 reply and ends without a body: uvicorn then closes the connection,
    which the client sees as a broken response (a connection error)."""

    def __init__(self, media_type: str) -> None:
        super().__init__(status_code=200, media_type=media_type)
        # No content-length: the body is then chunked, and the cut shows as a broken stream.
        self.raw_headers = [(b"content-type", media_type.encode())]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})


def _send(reply: HttpReply) -> Response:
    return Response(reply.body, reply.status, headers=reply.headers, media_type=reply.media_type)


def _refuse(wire: WireFormat, status: int, message: str) -> Response:
    return _send(wire.http_error(ScriptedError(status, message, fatal=True), stream=False))


async def _json_body(request: Request, wire: WireFormat, max_bytes: int) -> dict | Response:
    try:
        body = parse_request(await read_body(request, max_bytes))
    except BodyTooLarge as error:
        return _refuse(wire, 413, str(error))
    if isinstance(body, ScriptedError):
        return _refuse(wire, body.status, body.message)
    return body


def add_provider_routes(
    router: APIRouter, player_of: PlayerOf,
    body_limit_of: BodyLimitOf = lambda connection: DEFAULT_MAX_BODY_BYTES,
) -> None:
    """Mount every provider endpoint, the token counters and the catch-alls on ``router``."""

    def play(endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            try:
                hub, room, participant = await player_of(request)
            except AuthError as error:
                return _refuse(endpoint.wire, 401, str(error))
            body = await _json_body(request, endpoint.wire, body_limit_of(request))
            if isinstance(body, Response):
                return body
            reply = await answer_http(hub.player(room), body, wire=endpoint.wire,
                                      provider=endpoint.provider, participant=participant)
            if reply is None:
                stream = endpoint.wire.streams(body)
                return _DroppedResponse("text/event-stream" if stream else "application/json")
            return _send(reply)

        return handle

    async def count_tokens(request: Request) -> Response:
        try:
            await player_of(request)
        except AuthError as error:
            return _refuse(ANTHROPIC_MESSAGES, 401, str(error))
        body = await _json_body(request, ANTHROPIC_MESSAGES, body_limit_of(request))
        if isinstance(body, Response):
            return body
        try:
            count = ANTHROPIC_MESSAGES.count_tokens(body)
        except ScriptedError as error:
            return _send(ANTHROPIC_MESSAGES.http_error(error, stream=False))
        return Response(json.dumps(count), media_type="application/json")

    def not_emulated(prefix: Prefix) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            message = (
                f"localmesh does not emulate {request.method} {request.url.path}; under {prefix.path} "
                f"it serves {prefix.serves}. See docs/llm-providers.md."
            )
            return _refuse(prefix.wire, 404, message)

        return handle

    # Order matters: the exact endpoints first, the catch-all of each prefix last.
    for path in COUNT_TOKENS:
        router.add_api_route(path, count_tokens, methods=["POST"])
    for endpoint in ENDPOINTS:
        router.add_api_route(endpoint.path, play(endpoint), methods=["POST"])
    for prefix in PREFIXES:
        router.add_api_route(prefix.path + "/{rest:path}", not_emulated(prefix), methods=ALL_METHODS)
