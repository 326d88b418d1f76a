"""What a request looks like to a script, and whether a rule's ``match`` fits it.

Everything is computed from the *full* input history (request mode sends it whole; in
websocket mode the player first prepends what it remembered for ``previous_response_id``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .script import Match, ToolResultMatch


@dataclass(frozen=True)
class ToolResult:
    """A ``function_call_output`` of the new input, with the name of the call it answers."""

    call_id: str
    output: str
    name: str | None = None
    namespace: str | None = None


@dataclass(frozen=True)
class RequestFacts:
    model: str
    instructions: str | None
    user_text: str | None  # the latest user message, None when there is none
    turn: int  # 1 + the number of assistant replies already in the history
    tool_results: tuple[ToolResult, ...]  # function_call_outputs after the last assistant reply
    provider: str = "openai"  # who was asked: openai, anthropic, grok
    api: str = "responses"  # the wire format: responses, chat.completions, messages


def is_assistant_item(item: Any) -> bool:
    """Output items a model produced: assistant messages, reasoning and any ``*_call``."""
    if not isinstance(item, dict):
        return False
    kind = item.get("type")
    if kind is None or kind == "message":
        return item.get("role") == "assistant"
    return kind == "reasoning" or (isinstance(kind, str) and kind.endswith("_call"))


def content_text(content: Any) -> str:
    """The text of a message's ``content`` (a string, or a list of text parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        return "\n".join(p for p in parts if isinstance(p, str))
    return ""


def _output_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    text = content_text(output)
    return text if text else json.dumps(output, ensure_ascii=False, sort_keys=True)


def count_turn(history: Sequence[Any]) -> int:
    """1 + the runs of consecutive assistant items: one run per earlier response."""
    runs = 0
    previous = False
    for item in history:
        current = is_assistant_item(item)
        if current and not previous:
            runs += 1
        previous = current
    return runs + 1


def request_facts(
    request: dict[str, Any], history: Sequence[Any], *, provider: str = "openai", api: str = "responses"
) -> RequestFacts:
    """The facts rules can match on. ``history`` is the full input, oldest first."""
    user_text: str | None = None
    last_assistant = -1
    calls: dict[str, dict[str, Any]] = {}
    for index, item in enumerate(history):
        if not isinstance(item, dict):
            continue
        if item.get("role") == "user" and item.get("type", "message") == "message":
            user_text = content_text(item.get("content"))
        if is_assistant_item(item):
            last_assistant = index
        if item.get("type") == "function_call" and isinstance(item.get("call_id"), str):
            calls[item["call_id"]] = item
    results = []
    for item in history[last_assistant + 1 :]:
        if isinstance(item, dict) and item.get("type") == "function_call_output":
            call_id = str(item.get("call_id", ""))
            call = calls.get(call_id, {})
            results.append(
                ToolResult(
                    call_id=call_id,
                    output=_output_text(item.get("output")),
                    name=call.get("name"),
                    namespace=call.get("namespace"),
                )
            )
    instructions = request.get("instructions")
    return RequestFacts(
        model=str(request.get("model", "")),
        instructions=instructions if isinstance(instructions, str) else None,
        user_text=user_text,
        turn=count_turn(history),
        tool_results=tuple(results),
        provider=provider,
        api=api,
    )


def _fits(want: ToolResultMatch, got: ToolResult) -> bool:
    if want.call_id is not None and got.call_id != want.call_id:
        return False
    if want.output is not None and not want.output.search(got.output):
        return False
    if want.name is not None:
        qualified = f"{got.namespace}.{got.name}" if got.namespace else got.name
        if want.name not in (got.name, qualified):
            return False
    return True


def _describe_tool_result(want: ToolResultMatch) -> str:
    parts = []
    if want.call_id is not None:
        parts.append(f"call_id {want.call_id!r}")
    if want.output is not None:
        parts.append(f"output /{want.output.pattern}/")
    if want.name is not None:
        parts.append(f"name {want.name!r}")
    return " and ".join(parts)


def mismatch(match: Match, facts: RequestFacts) -> str | None:
    """``None`` when every condition holds, else why the first failing one failed."""
    if match.turn is not None and facts.turn != match.turn:
        return f"turn is {facts.turn}, not {match.turn}"
    if match.provider is not None and not match.provider.fullmatch(facts.provider):
        return f"provider {facts.provider!r} did not match /{match.provider.pattern}/"
    if match.api is not None and not match.api.fullmatch(facts.api):
        return f"api {facts.api!r} did not match /{match.api.pattern}/"
    if match.model is not None and not match.model.fullmatch(facts.model):
        return f"model {facts.model!r} did not match /{match.model.pattern}/"
    if match.instructions is not None:
        if facts.instructions is None:
            return "the request has no instructions"
        if not match.instructions.search(facts.instructions):
            return f"instructions /{match.instructions.pattern}/ did not match"
    if match.user is not None:
        if facts.user_text is None:
            return "the request has no user message"
        if not match.user.search(facts.user_text):
            return f"user /{match.user.pattern}/ did not match"
    wanted = match.tool_result
    if wanted is True and not facts.tool_results:
        return "no function_call_output in the new input"
    if wanted is False and facts.tool_results:
        return "the new input has a function_call_output"
    if isinstance(wanted, ToolResultMatch) and not any(_fits(wanted, r) for r in facts.tool_results):
        return f"no function_call_output with {_describe_tool_result(wanted)} in the new input"
    return None
