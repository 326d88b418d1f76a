"""OpenAI Responses JSON: output items, Response bodies, stream events, error bodies and the
bytes an HTTP reply carries. Pure functions; nothing here knows about scripts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .errors import ScriptedError

# Appended to localmesh's own refusals sent as websocket error events: the MeshAgent adapter
# retries websocket errors (for minutes) unless the message has one of a few phrases.
NO_RETRY_HINT = " [unsupported parameter: localmesh refuses this request, do not retry]"


def function_call_item(
    item_id: str, call_id: str, name: str, arguments: str, namespace: str | None = None
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": "completed",
    }
    if namespace is not None:
        item["namespace"] = namespace
    return item


def message_item(item_id: str, text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": item_id,
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def _tokens(value: Any) -> int:
    # A stable stand-in for a tokenizer: about four characters a token.
    return (len(json.dumps(value, ensure_ascii=False, sort_keys=True)) + 3) // 4


def usage(input_items: Any, output: list[dict[str, Any]]) -> dict[str, Any]:
    input_tokens, output_tokens = _tokens(input_items), _tokens(output)
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


def response_body(
    response_id: str,
    model: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    created_at: int = 0,
    parallel_tool_calls: bool = True,
) -> dict[str, Any]:
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "model": model,
        "status": "completed",
        "error": None,
        "incomplete_details": None,
        "output": output,
        "parallel_tool_calls": parallel_tool_calls,
        "tool_choice": "auto",
        "tools": [],
        "usage": usage,
    }


def stream_events(response: dict[str, Any]) -> list[dict[str, Any]]:
    """``response.created``, one ``response.output_item.done`` per item, ``response.completed``."""
    started = {**response, "status": "in_progress", "output": [], "usage": None}
    events: list[dict[str, Any]] = [{"type": "response.created", "response": started}]
    for index, item in enumerate(response["output"]):
        events.append({"type": "response.output_item.done", "output_index": index, "item": item})
    events.append({"type": "response.completed", "response": response})
    for number, event in enumerate(events):
        event["sequence_number"] = number
    return events


def error_body(error: ScriptedError) -> dict[str, Any]:
    """The body of an HTTP error, as OpenAI sends it."""
    return {
        "error": {
            "message": error.message,
            "type": error.type,
            "param": error.param,
            "code": error.code,
        }
    }


def error_event(error: ScriptedError, *, websocket: bool) -> dict[str, Any]:
    """An in-stream ``error`` event. The top-level ``message`` is what the MeshAgent adapter
    reads; the nested ``error`` object is what the openai SDK's SSE reader raises on."""
    message = error.message + (NO_RETRY_HINT if websocket and error.fatal else "")
    return {
        "type": "error",
        "status": error.status,
        "message": message,
        "code": error.code,
        "error": {"message": message, "type": error.type, "param": None, "code": error.code},
    }


def encode_sse(events: list[dict[str, Any]]) -> bytes:
    chunks = [f"event: {e['type']}\ndata: {json.dumps(e, ensure_ascii=False)}\n\n" for e in events]
    chunks.append("data: [DONE]\n\n")
    return "".join(chunks).encode()


@dataclass(frozen=True)
class HttpReply:
    """An HTTP answer to ``POST /responses``, independent of the web framework."""

    status: int
    body: bytes
    media_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else repr(float(seconds))


def http_response(response: dict[str, Any], *, stream: bool) -> HttpReply:
    if stream:
        return HttpReply(200, encode_sse(stream_events(response)), "text/event-stream")
    return HttpReply(200, json.dumps(response, ensure_ascii=False).encode())


def http_error(error: ScriptedError, *, stream: bool) -> HttpReply:
    """An HTTP status with an OpenAI error body; a 200 SSE stream with an ``error`` event when
    the answer asked for an in-stream error and the client streams."""
    if stream and error.event:
        return HttpReply(200, encode_sse([error_event(error, websocket=False)]), "text/event-stream")
    headers = {}
    if error.retry_after is not None:
        headers["retry-after"] = _format_seconds(error.retry_after)
    return HttpReply(error.status, json.dumps(error_body(error)).encode(), headers=headers)
