"""Turn recorded OpenAI Responses exchanges into a script that replays them.

Each exchange (a request body and the response the real endpoint gave) becomes one rule that
fires once, in order: it matches the request's newest input (the user's words, or the call ids
of the tool results it carries) and answers with what the endpoint answered, call ids
included. Only bodies are kept: headers, and so API keys, never reach the script.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from .matching import request_facts


def _input_items(body: dict[str, Any]) -> list[Any]:
    value = body.get("input")
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    return list(value) if isinstance(value, list) else []


def _match_for(body: dict[str, Any]) -> dict[str, Any]:
    facts = request_facts(body, _input_items(body))
    if facts.tool_results:
        # A follow-up turn: the tool results it brings name the calls they answer.
        first = facts.tool_results[0]
        return {"tool_result": {"call_id": first.call_id}}
    match: dict[str, Any] = {"tool_result": False}
    if facts.user_text is not None:
        match["user"] = f"^{re.escape(facts.user_text)}$"
    return match


def _arguments(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw) if isinstance(raw, str) else {}
    except ValueError:
        value = {}
    return value if isinstance(value, dict) else {"value": value}


def _answer_for(response: dict[str, Any]) -> dict[str, Any]:
    calls = []
    texts = []
    for item in response.get("output") or []:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "function_call":
            call = {"name": item.get("name"), "arguments": _arguments(item.get("arguments")),
                    "call_id": item.get("call_id")}
            if item.get("namespace"):
                call["namespace"] = item["namespace"]
            calls.append(call)
        elif item.get("type") == "message":
            for part in item.get("content") or []:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    texts.append(part["text"])
    if calls:
        return {"calls": calls}
    return {"text": "".join(texts)}


def _error_answer(status: int, body: Any) -> dict[str, Any]:
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return {"error": {"status": status, "message": str(message or f"HTTP {status}")}}


@dataclass
class Recording:
    """Exchanges in the order they happened; ``script()`` is the replaying script."""

    exchanges: list[tuple[dict[str, Any], int, Any]] = field(default_factory=list)

    def add(self, request: dict[str, Any], status: int, response: Any) -> None:
        self.exchanges.append((request, status, response))

    def script(self) -> dict[str, Any]:
        rules = []
        for number, (request, status, response) in enumerate(self.exchanges, start=1):
            ok = status < 400 and isinstance(response, dict)
            rules.append({
                "name": f"recorded-{number}",
                "times": "once",
                "match": _match_for(request),
                "answer": _answer_for(response) if ok else _error_answer(status, response),
            })
        return {"rules": rules}

    def yaml(self) -> str:
        header = "# Recorded by `localmesh llm record`: one rule per exchange, each used once, in order.\n"
        return header + yaml.safe_dump(self.script(), sort_keys=False, allow_unicode=True)
