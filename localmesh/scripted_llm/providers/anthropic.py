"""Anthropic Messages (``POST …/v1/messages``): requests, messages, SSE streams and errors.

A Messages request becomes the engine's Responses-shaped request: ``system`` the
instructions, user text a user message, ``tool_use`` blocks ``function_call`` items (the block
id is the call id) and ``tool_result`` blocks ``function_call_output`` items. The engine's
answer comes back as ``text`` and ``tool_use`` content blocks, with ``stop_reason``
``tool_use`` or ``end_turn``.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema

from .. import responses
from ..errors import ScriptedError
from ..responses import HttpReply
from .base import (
    WireFormat,
    arguments_of,
    bad_request,
    check_schema,
    chunks,
    retry_headers,
    sse,
    text_of,
)

_BLOCK: dict[str, Any] = {
    "type": "object",
    "required": ["type"],
    "properties": {"type": {"type": "string"}},
    "allOf": [
        {
            "if": {"properties": {"type": {"const": "text"}}},
            "then": {"required": ["text"], "properties": {"text": {"type": "string"}}},
        },
        {
            "if": {"properties": {"type": {"const": "tool_use"}}},
            "then": {
                "required": ["id", "name", "input"],
                "properties": {
                    "id": {"type": "string"},
                    "name": {"type": "string"},
                    "input": {"type": "object"},
                },
            },
        },
        {
            "if": {"properties": {"type": {"const": "tool_result"}}},
            "then": {"required": ["tool_use_id"], "properties": {"tool_use_id": {"type": "string"}}},
        },
    ],
}
_MESSAGE = {
    "type": "object",
    "required": ["role", "content"],
    "properties": {
        "role": {"enum": ["user", "assistant"]},
        "content": {"type": ["string", "array"], "items": _BLOCK},
    },
}
_PROPERTIES = {
    "model": {"type": "string", "minLength": 1},
    "max_tokens": {"type": "integer", "minimum": 1},
    "messages": {"type": "array", "minItems": 1, "items": _MESSAGE},
    "system": {"type": ["string", "array"], "items": _BLOCK},
    "stream": {"type": "boolean"},
    "tools": {"type": "array", "items": {"type": "object", "required": ["name"]}},
}
_MESSAGES = jsonschema.Draft202012Validator(
    {"type": "object", "required": ["model", "max_tokens", "messages"], "properties": _PROPERTIES}
)
_COUNT_TOKENS = jsonschema.Draft202012Validator(
    {"type": "object", "required": ["model", "messages"], "properties": _PROPERTIES}
)

# Anthropic's error types by HTTP status, for errors whose script gave no ``type``.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def _history(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for message in messages:
        content = message["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if message["role"] == "user":
            items += _user_items(blocks)
        else:
            items += _assistant_items(blocks)
    return items


def _user_items(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    texts: list[str] | None = None  # a user message in the making
    for block in blocks:
        if block["type"] == "tool_result":
            if texts is not None:
                items.append({"role": "user", "content": "\n".join(texts)})
                texts = None
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": block["tool_use_id"],
                    "output": text_of(block.get("content", "")),
                }
            )
        else:  # text, and images or documents, which scripts see as an empty text
            texts = [*(texts or []), block.get("text", "") if block["type"] == "text" else ""]
    if texts is not None:
        items.append({"role": "user", "content": "\n".join(t for t in texts if t)})
    return items


def _assistant_items(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for block in blocks:
        if block["type"] == "text":
            items.append(
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": block["text"]}],
                }
            )
        elif block["type"] == "tool_use":
            items.append(
                {
                    "type": "function_call",
                    "call_id": block["id"],
                    "name": block["name"],
                    "arguments": json.dumps(block["input"], ensure_ascii=False),
                }
            )
        elif block["type"] == "thinking":
            items.append({"type": "reasoning", "summary": [], "content": []})
    return items


def message_body(response: dict[str, Any]) -> dict[str, Any]:
    """The Anthropic ``Message`` for the engine's Response."""
    content: list[dict[str, Any]] = []
    for item in response["output"]:
        if item.get("type") == "message":
            content.append({"type": "text", "text": text_of(item.get("content"))})
        elif item.get("type") == "function_call":
            content.append(
                {"type": "tool_use", "id": item["call_id"], "name": item["name"], "input": arguments_of(item)}
            )
    usage = response.get("usage") or {}
    calls = any(block["type"] == "tool_use" for block in content)
    return {
        "id": "msg_" + str(response["id"]).removeprefix("resp_"),
        "type": "message",
        "role": "assistant",
        "model": response["model"],
        "content": content,
        "stop_reason": "tool_use" if calls else "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": usage.get("input_tokens", 0),
            "output_tokens": usage.get("output_tokens", 0),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }


def stream_events(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The streamed form of ``message``, in the order Anthropic sends it: ``message_start``,
    ``ping``, per block ``content_block_start`` / ``_delta``… / ``_stop``, ``message_delta``
    (stop reason and output tokens), ``message_stop``."""
    usage = message["usage"]
    started = {
        **copy.deepcopy(message),
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": 0},
    }
    events: list[dict[str, Any]] = [{"type": "message_start", "message": started}, {"type": "ping"}]
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            opening: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": piece} for piece in chunks(block["text"])]
        else:
            opening = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            arguments = json.dumps(block["input"], ensure_ascii=False)
            deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in chunks(arguments)]
        events.append({"type": "content_block_start", "index": index, "content_block": opening})
        events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
        events.append({"type": "content_block_stop", "index": index})
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": usage["output_tokens"]},
        }
    )
    events.append({"type": "message_stop"})
    return events


def error_body(error: ScriptedError) -> dict[str, Any]:
    kind = error.given_type or _ERROR_TYPES.get(error.status)
    if kind is None:
        kind = "api_error" if error.status >= 500 else "invalid_request_error"
    return {"type": "error", "error": {"type": kind, "message": error.message}}


def _responses_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic tool in Responses' shape: a client tool (``input_schema``) is a function;
    a server tool (``web_search_20250305``...) keeps its type."""
    kind = tool.get("type")
    if kind in (None, "custom"):
        return {"type": "function", "name": tool.get("name"), "description": tool.get("description"),
                "parameters": tool.get("input_schema")}
    return {"type": kind, "name": tool.get("name")}


class AnthropicMessagesWire(WireFormat):
    api = "messages"

    def engine_request(self, body: dict[str, Any]) -> dict[str, Any]:
        problem = check_schema(_MESSAGES, body)
        if problem is not None:
            raise bad_request(*problem)
        request: dict[str, Any] = {"model": body["model"], "input": _history(body["messages"])}
        system = body.get("system")
        if system:
            request["instructions"] = text_of(system)
        if body.get("tools"):
            request["tools"] = [_responses_tool(tool) for tool in body["tools"]]
        return request

    def wire_response(self, response: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        return message_body(response)

    def http_response(self, wire: dict[str, Any], body: dict[str, Any], *, stream: bool) -> HttpReply:
        if stream:
            return HttpReply(200, sse(stream_events(wire), named=True, done=False), "text/event-stream")
        return HttpReply(200, json.dumps(wire, ensure_ascii=False).encode())

    def http_error(self, error: ScriptedError, *, stream: bool) -> HttpReply:
        if stream and error.event:
            return HttpReply(200, sse([error_body(error)], named=True, done=False), "text/event-stream")
        return HttpReply(error.status, json.dumps(error_body(error)).encode(), headers=retry_headers(error))

    def count_tokens(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST …/v1/messages/count_tokens``: the same estimate as a reply's ``usage``."""
        problem = check_schema(_COUNT_TOKENS, body)
        if problem is not None:
            raise bad_request(*problem)
        request = {"model": body["model"], "input": _history(body["messages"])}
        return {"input_tokens": responses.usage(request["input"], [])["input_tokens"]}


ANTHROPIC_MESSAGES = AnthropicMessagesWire()
