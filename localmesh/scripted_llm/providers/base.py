"""What every wire format gives the engine, and the helpers they share.

The engine decides on OpenAI Responses shapes: a request with ``model``, ``instructions`` and
``input`` items, and a Response with ``output`` items (``function_call`` and ``message``). A
wire format is a thin, stateless translation on each side of that decision.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any

import jsonschema

from ..errors import ScriptedError
from ..matching import content_text as text_of  # re-exported for the providers
from ..responses import HttpReply


class WireFormat(ABC):
    """One API's request and reply shapes (``api`` names it in transcripts and scripts)."""

    api: str

    @abstractmethod
    def engine_request(self, body: dict[str, Any]) -> dict[str, Any]:
        """The Responses-shaped request the engine matches on; ``ScriptedError`` (400) for a
        body the API would refuse."""

    @abstractmethod
    def wire_response(self, response: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        """The API's reply body for the engine's Response to ``body``."""

    @abstractmethod
    def http_response(self, wire: dict[str, Any], body: dict[str, Any], *, stream: bool) -> HttpReply:
        """The HTTP answer carrying ``wire``: JSON, or the API's server-sent events."""

    @abstractmethod
    def http_error(self, error: ScriptedError, *, stream: bool) -> HttpReply:
        """The HTTP answer for an error, in the API's error shape."""

    def streams(self, body: dict[str, Any]) -> bool:
        return body.get("stream") is True


def check_schema(validator: jsonschema.Validator, body: Any) -> tuple[str, str | None] | None:
    """The first problem of ``body`` as ``(message, param)``, or ``None`` when it is valid.

    Messages name the field the way the providers do (``messages.1.role: …``), so a bad
    request reads the same from localmesh as from the real API.
    """
    errors = sorted(validator.iter_errors(body), key=lambda e: [str(p) for p in e.absolute_path])
    if not errors:
        return None
    error = errors[0]
    path = [str(p) for p in error.absolute_path]
    if error.validator == "required":
        missing = next(k for k in error.validator_value if k not in error.instance)
        place = ".".join([*path, missing])
        return f"{place}: Field required", place
    place = ".".join(path) or "body"
    if error.validator == "minItems":
        return f"{place}: must not be empty", place
    return f"{place}: {error.message}", place


def bad_request(message: str, param: str | None = None) -> ScriptedError:
    """localmesh's own refusal of a malformed body: 400, never retried, never a script's."""
    return ScriptedError(400, message, fatal=True, param=param)


def assistant_text(output: Iterable[dict[str, Any]]) -> str | None:
    """The text of the Response's ``message`` items, or ``None`` when it has none."""
    texts = [text_of(item.get("content")) for item in output if item.get("type") == "message"]
    return "".join(texts) if texts else None


def function_calls(output: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [item for item in output if item.get("type") == "function_call"]


def arguments_of(call: dict[str, Any]) -> dict[str, Any]:
    """A ``function_call``'s arguments as a mapping (the engine writes them as JSON text)."""
    value = json.loads(call.get("arguments") or "{}")
    return value if isinstance(value, dict) else {}


def chunks(text: str, size: int = 32) -> list[str]:
    """``text`` cut in fixed pieces, as a model streams it; at least one piece."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def sse(events: Iterable[dict[str, Any]], *, named: bool, done: bool) -> bytes:
    """Server-sent events: ``event: TYPE`` lines when ``named``; ``data: [DONE]`` when ``done``."""
    lines = []
    for event in events:
        data = json.dumps(event, ensure_ascii=False)
        lines.append(f"event: {event['type']}\ndata: {data}\n\n" if named else f"data: {data}\n\n")
    if done:
        lines.append("data: [DONE]\n\n")
    return "".join(lines).encode()


def retry_headers(error: ScriptedError) -> dict[str, str]:
    if error.retry_after is None:
        return {}
    seconds = error.retry_after
    return {"retry-after": str(int(seconds)) if float(seconds).is_integer() else repr(float(seconds))}
