"""Answering an HTTP ``POST /responses`` body, shared by the router and the respx fixture."""

from __future__ import annotations

from typing import Any

from . import responses
from .player import ScriptPlayer
from .responses import HttpReply


async def answer_http(player: ScriptPlayer, body: dict[str, Any]) -> HttpReply | None:
    """Play the request, wait its delay, and give the reply; ``None`` means cut the connection."""
    stream = body.get("stream") is True
    reply = player.play(body, transport="stream" if stream else "request")
    if reply.delay:
        await player.sleep(reply.delay)
    if reply.dropped:
        return None
    if reply.error is not None:
        return responses.http_error(reply.error, stream=stream)
    assert reply.response is not None
    return responses.http_response(reply.response, stream=stream)
