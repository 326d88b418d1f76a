"""The tool loop over Anthropic's Messages API (``POST …/v1/messages``).

Requests are shaped like MeshAgent's ``AnthropicMessagesAdapter``: the rules as ``system``,
the conversation as alternating ``user``/``assistant`` messages of content blocks, every
toolkit's tools in one flat list (Anthropic has no namespaces). The chat context keeps
Responses items, so the same Worker, hooks and tool results serve both APIs.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import httpx

from localmesh.protocol.llm_urls import provider_base_url
from localmesh.worker.backoff import Backoff
from localmesh.worker.context import ChatContext
from localmesh.worker.llm import LLMAdapter, LLMTransport, Sleep
from localmesh.worker.llm_http import HttpTransport
from localmesh.worker.tool_results import ToolResponseAdapter
from localmesh.worker.tools import Toolkit

# The MeshAgent adapter's defaults.
DEFAULT_MODEL = "claude-3-5-sonnet-latest"
ANTHROPIC_VERSION = "2023-06-01"


def default_max_tokens(model: str) -> int:
    """The MeshAgent adapter's ``max_tokens`` for a model, or ``ANTHROPIC_MAX_TOKENS``."""
    configured = os.environ.get("ANTHROPIC_MAX_TOKENS")
    if configured:
        return int(configured)
    name = model.strip().lower()
    if name.startswith(("claude-opus-4-6", "claude-opus-4-7", "claude-opus-4-8")):
        return 128_000
    if name.startswith(("claude-sonnet-4", "claude-3-7-sonnet")):
        return 64_000
    if name.startswith("claude-opus-4"):
        return 32_000
    return 8_192


def default_anthropic_base_url(api_url: str | None = None) -> str:
    """``ANTHROPIC_BASE_URL``, else ``{api_url}/anthropic`` (the emulator's endpoint), where
    ``api_url`` defaults to ``MESHAGENT_API_URL``, else a local ``localmesh serve``."""
    explicit = os.environ.get("ANTHROPIC_BASE_URL", "").strip()
    if explicit:
        return explicit.rstrip("/")
    api_url = api_url or os.environ.get("MESHAGENT_API_URL", "http://127.0.0.1:8765")
    return provider_base_url(api_url, "anthropic")


def messages_from_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The chat context's Responses items as Anthropic messages: user text and tool results
    are ``user`` turns, model text and calls ``assistant`` turns; neighbours of one role merge
    (the results of parallel calls must share one user message)."""
    messages: list[dict[str, Any]] = []

    def add(role: str, block: dict[str, Any]) -> None:
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].append(block)
        else:
            messages.append({"role": role, "content": [block]})

    for item in items:
        kind = item.get("type")
        if kind == "function_call":
            raw = item.get("arguments") or "{}"
            add("assistant", {"type": "tool_use", "id": item.get("call_id"), "name": item.get("name"),
                              "input": json.loads(raw) if isinstance(raw, str) else raw})
        elif kind == "function_call_output":
            text = {"type": "text", "text": str(item.get("output", ""))}
            add("user", {"type": "tool_result", "tool_use_id": item.get("call_id"), "content": [text]})
        elif item.get("role") in ("user", "assistant"):
            add(item["role"], {"type": "text", "text": _text(item.get("content"))})
    return messages


def items_from_message(message: dict[str, Any]) -> list[dict[str, Any]]:
    """An Anthropic ``Message``'s content blocks as Responses items."""
    items: list[dict[str, Any]] = []
    for block in message.get("content") or []:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            items.append({"type": "message", "role": "assistant",
                          "content": [{"type": "output_text", "text": block.get("text", "")}]})
        elif block.get("type") == "tool_use":
            items.append({"type": "function_call", "call_id": block.get("id"), "name": block.get("name"),
                          "arguments": json.dumps(block.get("input") or {}, ensure_ascii=False)})
    return items


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = [p.get("text") for p in content or [] if isinstance(p, dict)]
    return "\n".join(p for p in parts if isinstance(p, str))


class MessagesAdapter(LLMAdapter):
    """The tool loop over Anthropic's Messages API, non-streamed."""

    def __init__(
        self,
        transport: LLMTransport,
        *,
        model: str | None = None,
        tool_adapter: ToolResponseAdapter | None = None,
        max_tokens: int | None = None,
        max_turns: int = 50,
        max_retries: int = 5,
        retry_backoff: Backoff | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        super().__init__(
            transport, model=model or os.environ.get("ANTHROPIC_MODEL") or DEFAULT_MODEL,
            tool_adapter=tool_adapter, max_turns=max_turns, max_retries=max_retries,
            retry_backoff=retry_backoff, sleep=sleep,
        )
        self.max_tokens = max_tokens

    def request_body(
        self, context: ChatContext, toolkits: list[Toolkit], model: str | None = None
    ) -> dict[str, Any]:
        model = model or self.model
        body: dict[str, Any] = {
            "model": model,
            "max_tokens": self.max_tokens or default_max_tokens(model),
            "messages": messages_from_items(context.messages),
        }
        if context.instructions is not None:
            body["system"] = context.instructions
        tools = [
            {"name": tool.name, "description": tool.description, "input_schema": dict(tool.parameters)}
            for toolkit in toolkits
            for tool in toolkit.tools
        ]
        if tools:
            body["tools"] = tools
        body["stream"] = False
        return body

    def output_items(self, response: dict[str, Any]) -> list[dict[str, Any]]:
        return items_from_message(response)


def AnthropicMessagesAdapter(  # noqa: N802 - named like the MeshAgent class it stands in for
    *,
    model: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    client: httpx.AsyncClient | None = None,
    **options: Any,
) -> MessagesAdapter:
    """A Messages adapter over HTTP. Base URL: ``base_url``, ``ANTHROPIC_BASE_URL``, else
    ``{MESHAGENT_API_URL}/anthropic``. Key (sent as ``x-api-key``): ``api_key``,
    ``ANTHROPIC_API_KEY``, else the worker's room token (bound when the worker starts)."""
    transport = HttpTransport(
        base_url or default_anthropic_base_url(),
        api_key or os.environ.get("ANTHROPIC_API_KEY") or None,
        client=client,
        path="/v1/messages",
        auth_header="x-api-key",
        headers={"anthropic-version": ANTHROPIC_VERSION},
    )
    return MessagesAdapter(transport, model=model, **options)
