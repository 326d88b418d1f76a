"""Answering an HTTP request body, shared by the router and the respx fixtures."""

from __future__ import annotations

from typing import Any

from .player import ScriptPlayer
from .providers import RESPONSES, WireFormat
from .responses import HttpReply


async def answer_http(
    player: ScriptPlayer, body: dict[str, Any], *, wire: WireFormat = RESPONSES, provider: str = "openai",
    participant: str | None = None,
) -> HttpReply | None:
    """Play the request, wait its delay, and give the reply in ``wire``'s shapes; ``None``
    means cut the connection."""
    stream = wire.streams(body)
    reply = player.play(body, transport="stream" if stream else "request", wire=wire, provider=provider,
                        participant=participant)
    if reply.delay:
        await player.sleep(reply.delay)
    if reply.dropped:
        return None
    if reply.error is not None:
        return wire.http_error(reply.error, stream=stream)
    assert reply.response is not None
    return wire.http_response(reply.response, body, stream=stream)
