"""OpenAI Chat Completions (``POST …/chat/completions``): requests, completions, chunks, errors.

``system``/``developer`` messages become the instructions, ``user`` messages user messages,
an assistant's ``tool_calls`` ``function_call`` items and ``tool`` messages
``function_call_output`` items. The engine's answer comes back as one choice whose message
has ``content`` or ``tool_calls`` (never an empty list: clients test it against ``None``).
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema

from ..errors import ScriptedError
from ..responses import HttpReply, error_body, error_event
from .base import (
    WireFormat,
    assistant_text,
    bad_request,
    check_schema,
    chunks,
    function_calls,
    retry_headers,
    sse,
    text_of,
)

_TOOL_CALL = {
    "type": "object",
    "required": ["id", "function"],
    "properties": {
        "id": {"type": "string"},
        "function": {
            "type": "object",
            "required": ["name", "arguments"],
            "properties": {"name": {"type": "string"}, "arguments": {"type": "string"}},
        },
    },
}
_MESSAGE = {
    "type": "object",
    "required": ["role"],
    "properties": {
        "role": {"enum": ["system", "developer", "user", "assistant", "tool"]},
        "content": {"type": ["string", "array", "null"]},
        "tool_calls": {"type": ["array", "null"], "items": _TOOL_CALL},
    },
    "allOf": [
        {
            "if": {"properties": {"role": {"const": "tool"}}},
            "then": {
                "required": ["tool_call_id", "content"],
                "properties": {"tool_call_id": {"type": "string"}},
            },
        },
        {
            "if": {"properties": {"role": {"enum": ["system", "developer", "user"]}}},
            "then": {"required": ["content"]},
        },
    ],
}
_VALIDATOR = jsonschema.Draft202012Validator(
    {
        "type": "object",
        "required": ["model", "messages"],
        "properties": {
            "model": {"type": "string", "minLength": 1},
            "messages": {"type": "array", "minItems": 1, "items": _MESSAGE},
            "stream": {"type": "boolean"},
            "n": {"const": 1},  # one choice is all a script gives
            "tools": {"type": "array", "items": {"type": "object", "required": ["type"]}},
        },
    }
)


def _history(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str | None]:
    """The input items and the instructions (the system and developer messages, joined)."""
    items: list[dict[str, Any]] = []
    instructions: list[str] = []
    for message in messages:
        role, content = message["role"], message.get("content")
        if role in ("system", "developer"):
            instructions.append(text_of(content))
        elif role == "user":
            items.append({"role": "user", "content": text_of(content)})
        elif role == "tool":
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": message["tool_call_id"],
                    "output": text_of(content),
                }
            )
        else:
            if text_of(content):
                items.append(
                    {
                        "type": "message",
                        "role": "assistant",
                        "content": [{"type": "output_text", "text": text_of(content)}],
                    }
                )
            for call in message.get("tool_calls") or ():
                items.append(
                    {
                        "type": "function_call",
                        "call_id": call["id"],
                        "name": call["function"]["name"],
                        "arguments": call["function"]["arguments"],
                    }
                )
    return items, "\n".join(instructions) if instructions else None


def completion_body(response: dict[str, Any]) -> dict[str, Any]:
    """The ``chat.completion`` for the engine's Response."""
    output = response["output"]
    calls = [
        {
            "id": call["call_id"],
            "type": "function",
            "function": {"name": call["name"], "arguments": call["arguments"]},
        }
        for call in function_calls(output)
    ]
    message: dict[str, Any] = {"role": "assistant", "content": assistant_text(output), "refusal": None}
    if calls:
        message["tool_calls"] = calls
    usage = response.get("usage") or {}
    prompt, completion = usage.get("input_tokens", 0), usage.get("output_tokens", 0)
    return {
        "id": "chatcmpl-" + str(response["id"]).removeprefix("resp_"),
        "object": "chat.completion",
        "created": response.get("created_at", 0),
        "model": response["model"],
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if calls else "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
        "system_fingerprint": None,
    }


def stream_chunks(completion: dict[str, Any], *, include_usage: bool) -> list[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects of ``completion``: the role, the text or each
    call (its id and name, then its arguments), the finish reason, and the usage if asked."""
    head = {key: completion[key] for key in ("id", "created", "model", "system_fingerprint")}
    choice = completion["choices"][0]
    message = choice["message"]

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        body = {**head, "object": "chat.completion.chunk"}
        body["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]
        return body

    out = [chunk({"role": "assistant", "content": "", "refusal": None})]
    if message["content"] is not None:
        out += [chunk({"content": piece}) for piece in chunks(message["content"])]
    for index, call in enumerate(message.get("tool_calls") or ()):
        name = call["function"]["name"]
        opening = {"index": index, "id": call["id"], "type": "function"}
        out.append(chunk({"tool_calls": [{**opening, "function": {"name": name, "arguments": ""}}]}))
        for piece in chunks(call["function"]["arguments"]):
            out.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
    out.append(chunk({}, choice["finish_reason"]))
    if include_usage:
        out.append({**head, "object": "chat.completion.chunk", "choices": [], "usage": completion["usage"]})
    return out


def _responses_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """A Chat Completions tool in Responses' flat shape (``{"type": "function", "name", ...}``)."""
    function = tool.get("function")
    if tool.get("type") == "function" and isinstance(function, dict):
        return {"type": "function", **function}
    return tool


class ChatCompletionsWire(WireFormat):
    api = "chat.completions"

    def engine_request(self, body: dict[str, Any]) -> dict[str, Any]:
        problem = check_schema(_VALIDATOR, body)
        if problem is not None:
            raise bad_request(*problem)
        items, instructions = _history(body["messages"])
        request: dict[str, Any] = {"model": body["model"], "input": items}
        if instructions is not None:
            request["instructions"] = instructions
        if body.get("tools"):
            request["tools"] = [_responses_tool(tool) for tool in body["tools"]]
        return request

    def wire_response(self, response: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        return completion_body(response)

    def http_response(self, wire: dict[str, Any], body: dict[str, Any], *, stream: bool) -> HttpReply:
        if stream:
            options = body.get("stream_options")
            usage = isinstance(options, dict) and options.get("include_usage") is True
            return HttpReply(200, sse(stream_chunks(wire, include_usage=usage), named=False, done=True),
                             "text/event-stream")
        return HttpReply(200, json.dumps(wire, ensure_ascii=False).encode())

    def http_error(self, error: ScriptedError, *, stream: bool) -> HttpReply:
        if stream and error.event:
            # The openai client raises on any chunk that carries an ``error`` object.
            event = {"type": "error", "error": error_event(error, websocket=False)["error"]}
            return HttpReply(200, sse([event], named=False, done=True), "text/event-stream")
        return HttpReply(error.status, json.dumps(error_body(error)).encode(), headers=retry_headers(error))


CHAT_COMPLETIONS = ChatCompletionsWire()
