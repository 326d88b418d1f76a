"""The scripted LLM's transcript of a room, shaped for reading: conversations of turns, each
with what was asked (instructions, the new input, the tools offered) and what the script
answered (the rule that matched, its text or tool calls, or the error).

Requests are read through the engine's own translation of each API (Responses, Chat
Completions, Anthropic Messages) into Responses shapes, so every provider reads the same."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ...scripted_llm.errors import ScriptedError
from ...scripted_llm.providers import WIRES
from ...scripted_llm.transcript import TranscriptEntry

if TYPE_CHECKING:
    from ..state import EmulatorState

TEXT_LIMIT = 4000  # characters of one text shown; the rest is cut with a note


def _cut(text: str) -> str:
    if len(text) <= TEXT_LIMIT:
        return text
    return f"{text[:TEXT_LIMIT]}… ({len(text) - TEXT_LIMIT} more characters)"


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return json.dumps(content, ensure_ascii=False)


def _arguments(text: Any) -> Any:
    try:
        return json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return text


def _item(item: Any) -> dict[str, Any]:
    """One input or output item, as a person reads it."""
    if not isinstance(item, dict):
        return {"kind": "other", "text": _cut(json.dumps(item, ensure_ascii=False))}
    kind = item.get("type") or ("message" if "role" in item else "other")
    if kind == "message":
        text = _cut(_text_of(item.get("content")))
        return {"kind": "message", "role": item.get("role", "user"), "text": text}
    if kind == "function_call":
        name = item.get("name", "?")
        namespace = item.get("namespace")
        return {"kind": "tool_call", "name": f"{namespace}.{name}" if namespace else name,
                "call_id": item.get("call_id"), "arguments": _arguments(item.get("arguments"))}
    if kind == "function_call_output":
        return {"kind": "tool_result", "call_id": item.get("call_id"),
                "text": _cut(_text_of(item.get("output")))}
    return {"kind": str(kind), "text": _cut(json.dumps(item, ensure_ascii=False))}


def _new_input(request: dict[str, Any]) -> list[Any]:
    """The items this request added: after the last model output it echoes (a client that
    resends the whole history would otherwise repeat every turn)."""
    items = request.get("input", [])
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    if not isinstance(items, list):
        return [items]
    last_output = -1
    for index, item in enumerate(items):
        if isinstance(item, dict) and (item.get("type") == "function_call"
                                       or (item.get("role") == "assistant")):
            last_output = index
    return items[last_output + 1:]


def _tools(request: dict[str, Any]) -> list[str]:
    """The tools a request offered, in any of the APIs' shapes."""
    names = []
    for tool in request.get("tools") or ():
        if not isinstance(tool, dict):
            continue
        if tool.get("type") == "namespace":  # Responses: a toolkit's functions grouped
            inner = [t for t in tool.get("tools") or () if isinstance(t, dict)]
            names += [f"{tool.get('name')}.{t.get('name')}" for t in inner]
        elif isinstance(tool.get("function"), dict):  # Chat Completions
            names.append(str(tool["function"].get("name")))
        else:  # Responses functions, Anthropic tools
            names.append(str(tool.get("name") or tool.get("type")))
    return names


def _engine_request(entry: TranscriptEntry) -> dict[str, Any]:
    """The request in Responses shapes (as the script saw it)."""
    wire = WIRES.get(entry.api)
    if wire is None or entry.api == "responses":
        return entry.request
    try:
        return wire.engine_request(entry.request)
    except (ScriptedError, KeyError, TypeError):
        return {"input": []}  # a body the API refused: its error says why


def _answer(entry: TranscriptEntry) -> list[Any]:
    """What the script answered, as Responses output items, whatever API carried it."""
    response = entry.response or {}
    if entry.api == "chat.completions":
        message = ((response.get("choices") or [{}])[0] or {}).get("message") or {}
        items: list[Any] = []
        if message.get("content"):
            items.append({"type": "message", "role": "assistant", "content": message["content"]})
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            items.append({"type": "function_call", "call_id": call.get("id"), "name": function.get("name"),
                          "arguments": function.get("arguments")})
        return items
    if entry.api == "messages":
        items = []
        for block in response.get("content") or ():
            if block.get("type") == "text":
                items.append({"type": "message", "role": "assistant", "content": block.get("text", "")})
            elif block.get("type") == "tool_use":
                items.append({"type": "function_call", "call_id": block.get("id"), "name": block.get("name"),
                              "arguments": block.get("input")})
        return items
    return list(response.get("output") or ())


def turn(entry: TranscriptEntry) -> dict[str, Any]:
    request = _engine_request(entry)
    unmatched = entry.rule is None and entry.error is not None
    answer = [_item(item) for item in _answer(entry)]
    error = None
    if entry.error is not None:
        error = {"status": entry.error.get("status"), "message": _cut(str(entry.error.get("message", "")))}
    return {
        "index": entry.index, "turn": entry.turn, "transport": entry.transport,
        "provider": entry.provider, "api": entry.api, "model": entry.model or request.get("model"),
        "instructions": _cut(str(request.get("instructions") or "")),
        "input": [_item(item) for item in _new_input(request)], "tools": _tools(entry.request),
        "rule": entry.rule, "answer": answer, "error": error, "dropped": entry.dropped,
        "unmatched": unmatched,
    }


def conversations(state: EmulatorState, room: str) -> dict[str, Any]:
    """The room's LLM exchanges, one list of turns per conversation, in the order they began."""
    entries = state.llm.transcript(room)
    grouped: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        grouped.setdefault(entry.conversation or "(none)", []).append(turn(entry))
    script = state.llm.script(room)
    return {
        "script": {"source": str(script.source), "rules": len(script.rules)},
        "requests": len(entries),
        "unmatched": sum(1 for e in entries if e.rule is None and e.error is not None),
        "conversations": [
            {"id": conv, "turns": turns, "unmatched": sum(t["unmatched"] for t in turns)}
            for conv, turns in grouped.items()
        ],
    }
