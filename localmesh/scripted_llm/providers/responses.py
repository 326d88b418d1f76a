"""OpenAI Responses (``POST …/responses``): the engine's own shapes, passed through."""

from __future__ import annotations

from typing import Any

from .. import responses
from ..errors import ScriptedError
from ..responses import HttpReply
from .base import WireFormat


class ResponsesWire(WireFormat):
    api = "responses"

    def engine_request(self, body: dict[str, Any]) -> dict[str, Any]:
        return body

    def wire_response(self, response: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        return response

    def http_response(self, wire: dict[str, Any], body: dict[str, Any], *, stream: bool) -> HttpReply:
        return responses.http_response(wire, stream=stream)

    def http_error(self, error: ScriptedError, *, stream: bool) -> HttpReply:
        return responses.http_error(error, stream=stream)


RESPONSES = ResponsesWire()
