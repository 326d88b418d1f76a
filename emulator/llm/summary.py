"""What an LLM exchange said, whatever the API's shapes (Responses, Chat Completions,
Anthropic Messages): for the timeline's ``llm`` events and the failure report's transcripts."""

from __future__ import annotations

import json
from typing import Any


def _arguments(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw or "{}")
    except (TypeError, ValueError):
        return {"arguments": raw}
    return value if isinstance(value, dict) else {"arguments": value}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return " ".join(
        part.get("text", "") for part in content or () if isinstance(part, dict) and part.get("text")
    )


def answer_of(response: dict[str, Any] | None) -> tuple[list[tuple[str, dict[str, Any]]], str]:
    """``(calls, text)``: the tool calls (``namespace.name`` or ``name``, arguments) and the
    text of a response."""
    calls: list[tuple[str, dict[str, Any]]] = []
    texts: list[str] = []
    if not isinstance(response, dict):
        return calls, ""
    for item in response.get("output") or ():  # Responses
        if item.get("type") == "function_call":
            name = f"{item['namespace']}.{item['name']}" if item.get("namespace") else str(item.get("name"))
            calls.append((name, _arguments(item.get("arguments"))))
        elif item.get("type") == "message":
            texts.append(_text(item.get("content")))
    for choice in response.get("choices") or ():  # Chat Completions
        message = choice.get("message") or {}
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            calls.append((str(function.get("name")), _arguments(function.get("arguments"))))
        if message.get("content"):
            texts.append(_text(message["content"]))
    if response.get("type") == "message":  # Anthropic Messages
        for block in response.get("content") or ():
            if block.get("type") == "tool_use":
                calls.append((str(block.get("name")), _arguments(block.get("input"))))
            elif block.get("type") == "text":
                texts.append(str(block.get("text", "")))
    return calls, " ".join(t for t in texts if t)


def asked_of(request: dict[str, Any]) -> tuple[str, str] | None:
    """``(what, text)`` of the newest input of a request: ``("user", message)`` or
    ``("tool result", output)``; ``None`` when it has none."""
    items = request.get("input")
    if isinstance(items, str):
        return "user", items
    for item in reversed(items or request.get("messages") or []):
        if not isinstance(item, dict):
            continue
        if item.get("type") == "function_call_output":  # Responses
            return "tool result", str(item.get("output"))
        if item.get("role") == "tool":  # Chat Completions
            return "tool result", _text(item.get("content"))
        if item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, list):  # Anthropic: tool results come as user blocks
                results = [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]
                if results:
                    return "tool result", _text(results[-1].get("content"))
            return "user", _text(content)
    return None
