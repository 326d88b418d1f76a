"""What a request looks like to a script (``LLMRequest``), and whether a rule's ``match`` fits it.

Everything is computed from the *full* input history (request mode sends it whole; in
websocket mode the player first prepends what it remembered for ``previous_response_id``).
``LLMRequest`` is also what Python rules receive.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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
class OfferedTool:
    """A tool the request offers the model. ``namespace`` is its toolkit when the client groups
    tools (Responses ``namespace`` tools, as the MeshAgent adapter sends them)."""

    name: str
    namespace: str | None = None
    description: str | None = None
    parameters: Mapping[str, Any] | None = None
    type: str = "function"  # or a built-in tool's type (web_search, ...)

    @property
    def qualified_name(self) -> str:
        """``namespace.name``, or ``name`` when it has no namespace."""
        return f"{self.namespace}.{self.name}" if self.namespace else self.name

    def is_called(self, name: str) -> bool:
        """Whether ``name`` names it: its name, or ``namespace.name``."""
        return name in (self.name, self.qualified_name)


@dataclass(frozen=True)
class LLMRequest:
    """One LLM request as scripts see it: the facts ``match`` tests, and what Python rules get.

    ``body`` is the request as the client sent it, in its API's shape (``api``); ``input`` is
    the whole conversation so far as OpenAI Responses items (the engine's shape, whatever the
    API). Treat both as read-only.
    """

    model: str
    instructions: str | None
    user_text: str | None  # the latest user message, None when there is none
    turn: int  # 1 + the number of assistant replies already in the history
    tool_results: tuple[ToolResult, ...]  # function_call_outputs after the last assistant reply
    provider: str = "openai"  # who was asked: openai, anthropic, grok
    api: str = "responses"  # the wire format: responses, chat.completions, messages
    tools: tuple[OfferedTool, ...] = ()  # what the model is offered, namespaces flattened
    body: Mapping[str, Any] = field(default_factory=dict, repr=False)
    input: tuple[Any, ...] = field(default=(), repr=False)
    room: str = "default"
    conversation: str | None = None

    @property
    def tool_names(self) -> tuple[str, ...]:
        """The offered tools' qualified names (``storage.write_file``), in the request's order."""
        return tuple(tool.qualified_name for tool in self.tools)

    def tool(self, name: str) -> OfferedTool | None:
        """The offered tool ``name`` names (``write_file`` or ``storage.write_file``), if any."""
        return next((tool for tool in self.tools if tool.is_called(name)), None)

    def offers(self, name: str) -> bool:
        return self.tool(name) is not None


def offered_tools(tools: Any) -> tuple[OfferedTool, ...]:
    """The request's ``tools`` (Responses shapes: functions, namespaces of functions, built-in
    tools) as a flat list."""
    found: list[OfferedTool] = []
    for tool in tools if isinstance(tools, list) else ():
        if not isinstance(tool, dict):
            continue
        kind = str(tool.get("type") or "function")
        if kind == "namespace":
            namespace = str(tool.get("name") or "") or None
            for inner in tool.get("tools") or ():
                if isinstance(inner, dict) and inner.get("name"):
                    found.append(_offered(inner, namespace))
        elif tool.get("name") or kind != "function":
            found.append(_offered(tool, None))
    return tuple(found)


def _offered(tool: dict[str, Any], namespace: str | None) -> OfferedTool:
    kind = str(tool.get("type") or "function")
    parameters = tool.get("parameters")
    description = tool.get("description")
    return OfferedTool(
        name=str(tool.get("name") or kind),
        namespace=namespace,
        description=description if isinstance(description, str) else None,
        parameters=parameters if isinstance(parameters, dict) else None,
        type=kind,
    )


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
    request: dict[str, Any], history: Sequence[Any], *, provider: str = "openai", api: str = "responses",
    body: Mapping[str, Any] | None = None, room: str = "default", conversation: str | None = None,
) -> LLMRequest:
    """The facts rules can match on. ``request`` is the engine's (Responses-shaped) request,
    ``history`` the full input, oldest first; ``body`` the request as sent (default: ``request``)."""
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
    return LLMRequest(
        model=str(request.get("model", "")),
        instructions=instructions if isinstance(instructions, str) else None,
        user_text=user_text,
        turn=count_turn(history),
        tool_results=tuple(results),
        provider=provider,
        api=api,
        tools=offered_tools(request.get("tools")),
        body=request if body is None else body,
        input=tuple(history),
        room=room,
        conversation=conversation,
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


def mismatch(match: Match, facts: LLMRequest) -> str | None:
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
