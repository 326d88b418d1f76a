"""LLM adapters for the Worker: one tool loop, a request shape per API, a pluggable transport.

``LLMAdapter`` is the loop: ask the model, run the function calls it makes through the
toolkits, send their results back, until it answers with a message. The chat context keeps
the conversation as OpenAI Responses items whatever the API; a subclass turns it into its
API's request and the reply back into items. ``ResponsesAdapter`` speaks OpenAI Responses,
shaped like MeshAgent's ``OpenAIResponsesAdapter`` in request mode (§9.2);
``localmesh.worker.anthropic.MessagesAdapter`` speaks Anthropic's Messages API.

Where a reply comes from is the transport's job: ``HttpTransport`` posts to the provider (or
the emulator's scripted endpoints); the harness plugs in one that plays a script in process
(``localmesh.fixtures.llm.ScriptedLLMAdapter``). ``OpenAIResponsesAdapter()`` builds the usual setup.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import os
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import httpx

from localmesh.protocol.llm_urls import provider_base_url
from localmesh.worker.backoff import Backoff
from localmesh.worker.context import ChatContext
from localmesh.worker.errors import LLMError
from localmesh.worker.llm_http import HttpTransport
from localmesh.worker.tool_results import ToolResponseAdapter
from localmesh.worker.tools import Tool, Toolkit

logger = logging.getLogger("localmesh.worker.llm")

# The MeshAgent adapter's defaults, so that requests look the same from both workers.
DEFAULT_MODEL = "gpt-6.1-sol"
MAX_OUTPUT_TOKENS = 32000
Sleep = Callable[[float], Awaitable[None]]


class LLMTransport(Protocol):
    async def create(self, body: dict[str, Any], *, conversation: str) -> dict[str, Any]:
        """Return the API's reply JSON for the request ``body``, or raise ``LLMError``."""
        ...


def default_base_url(api_url: str | None = None) -> str:
    """``OPENAI_BASE_URL``, else ``{api_url}/openai/v1`` (the emulator's endpoint), where
    ``api_url`` defaults to ``MESHAGENT_API_URL``, else a local ``localmesh serve``."""
    explicit = os.environ.get("OPENAI_BASE_URL")
    if explicit:
        return explicit.rstrip("/")
    api_url = api_url or os.environ.get("MESHAGENT_API_URL", "http://127.0.0.1:8765")
    return provider_base_url(api_url, "openai")


# ---------------------------------------------------------------- the turn loop


class LLMAdapter:
    """Runs one task to its final answer: the tool loop, shared by every API.

    A subclass gives ``request_body`` (its API's request for the context) and
    ``output_items`` (its API's reply as Responses ``function_call``/``message`` items).
    Retries 408/409/429/5xx and connection errors up to ``max_retries`` times with
    capped, jittered backoff, waiting ``retry-after`` instead when the server sends it.
    """

    def __init__(
        self,
        transport: LLMTransport,
        *,
        model: str,
        tool_adapter: ToolResponseAdapter | None = None,
        max_turns: int = 50,
        max_retries: int = 5,
        retry_backoff: Backoff | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.transport = transport
        self.model = model
        self.tool_adapter = tool_adapter or ToolResponseAdapter()
        self.max_turns = max_turns
        self.max_retries = max_retries
        self._retry_backoff = retry_backoff or Backoff(base=1.0, cap=30.0)
        self._sleep = sleep
        # Bind the room token only when no key was configured (as the MeshAgent Worker does).
        self._bind_token = isinstance(transport, HttpTransport) and transport.api_key is None

    def request_body(
        self, context: ChatContext, toolkits: list[Toolkit], model: str | None = None
    ) -> dict[str, Any]:
        raise NotImplementedError

    def output_items(self, response: dict[str, Any]) -> list[dict[str, Any]]:
        raise NotImplementedError

    def default_model(self) -> str:
        return self.model

    def create_session(self) -> ChatContext:
        return ChatContext()

    def with_runtime_token(self, token: str) -> LLMAdapter:
        """The adapter to use inside a room: the room token authenticates the LLM calls
        unless an API key was configured."""
        if not self._bind_token:
            return self
        assert isinstance(self.transport, HttpTransport)
        bound = copy.copy(self)
        bound.transport = self.transport.with_api_key(token)
        bound._bind_token = False
        return bound

    async def create_response(
        self,
        *,
        context: ChatContext,
        toolkits: list[Toolkit],
        model: str | None = None,
        tool_adapter: ToolResponseAdapter | None = None,
    ) -> str:
        """Loop LLM turns and tool calls until the model answers; return the answer's text."""
        renderer = tool_adapter or self.tool_adapter
        conversation = f"conv_{uuid.uuid4().hex}"
        for _ in range(self.max_turns):
            response = await self._create(self.request_body(context, toolkits, model), conversation)
            output = self.output_items(response)
            context.append_items(output)
            calls = [item for item in output if item.get("type") == "function_call"]
            if calls:
                for call in calls:
                    context.messages.append(await self._run_call(call, toolkits, renderer))
                continue
            answer = final_text(output)
            if answer is None:
                raise LLMError("the model returned neither a message nor a function call")
            return answer
        raise LLMError(f"no final answer after {self.max_turns} turns")

    async def _create(self, body: dict[str, Any], conversation: str) -> dict[str, Any]:
        self._retry_backoff.reset()
        attempt = 0
        while True:
            try:
                return await self.transport.create(body, conversation=conversation)
            except LLMError as error:
                if not error.retryable or attempt >= self.max_retries:
                    raise
                attempt += 1
                delay = self._retry_backoff.next_delay()
                if error.retry_after is not None:
                    delay = min(error.retry_after, self._retry_backoff.cap)
                logger.warning("LLM request failed (%s); retry %d in %.2f s", error, attempt, delay)
                await self._sleep(delay)

    async def _run_call(
        self, call: dict[str, Any], toolkits: list[Toolkit], renderer: ToolResponseAdapter
    ) -> dict[str, Any]:
        call_id = call.get("call_id")
        try:
            tool = find_tool(toolkits, str(call.get("name")), call.get("namespace"))
            raw = call.get("arguments") or "{}"
            arguments = json.loads(raw) if isinstance(raw, str) else raw
            if not isinstance(arguments, dict):
                raise ValueError("function call arguments must be a JSON object")
            output = renderer.to_output(await tool.execute(arguments))
        except Exception as error:
            logger.info("tool call %s failed: %s", call.get("name"), error)
            output = renderer.error_output(error)
        return {"type": "function_call_output", "call_id": call_id, "output": output}


class ResponsesAdapter(LLMAdapter):
    """The tool loop over OpenAI's Responses API (``POST …/responses``)."""

    def __init__(
        self,
        transport: LLMTransport,
        *,
        model: str | None = None,
        tool_adapter: ToolResponseAdapter | None = None,
        max_output_tokens: int | None = MAX_OUTPUT_TOKENS,
        max_turns: int = 50,
        max_retries: int = 5,
        retry_backoff: Backoff | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        super().__init__(
            transport, model=model or os.environ.get("OPENAI_MODEL") or DEFAULT_MODEL,
            tool_adapter=tool_adapter, max_turns=max_turns, max_retries=max_retries,
            retry_backoff=retry_backoff, sleep=sleep,
        )
        self.max_output_tokens = max_output_tokens

    def request_body(
        self, context: ChatContext, toolkits: list[Toolkit], model: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model or self.model, "input": list(context.messages)}
        if context.instructions is not None:
            body["instructions"] = context.instructions
        tools = [toolkit.definition() for toolkit in toolkits if toolkit.tools]
        if tools:
            body["tools"] = tools
        if self.max_output_tokens is not None:
            body["max_output_tokens"] = self.max_output_tokens
        body["store"] = False
        body["stream"] = False
        return body

    def output_items(self, response: dict[str, Any]) -> list[dict[str, Any]]:
        return [item for item in response.get("output") or [] if isinstance(item, dict)]


def find_tool(toolkits: list[Toolkit], name: str, namespace: Any = None) -> Tool:
    """The tool called ``name`` (within ``namespace`` if the model gave one)."""
    for toolkit in toolkits:
        if namespace and toolkit.name != namespace:
            continue
        found = toolkit.get(name)
        if found is not None:
            return found
    where = f" in toolkit {namespace!r}" if namespace else ""
    raise LookupError(f"no tool named {name!r}{where}")


def final_text(output: list[dict[str, Any]]) -> str | None:
    """The text of the last ``message`` item, or None if there is none."""
    for item in reversed(output):
        if item.get("type") == "message" or (item.get("role") == "assistant" and "content" in item):
            content = item.get("content")
            if isinstance(content, str):
                return content
            return "".join(
                part.get("text", "") for part in content or [] if isinstance(part, dict)
            )
    return None


# ---------------------------------------------------------------- the usual setups


def OpenAIResponsesAdapter(  # noqa: N802 - named like the class it stands in for
    *,
    model: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    client: httpx.AsyncClient | None = None,
    **options: Any,
) -> ResponsesAdapter:
    """A Responses adapter over HTTP. Base URL: ``base_url``, ``OPENAI_BASE_URL``, else
    ``{MESHAGENT_API_URL}/openai/v1``. Key: ``api_key``, ``OPENAI_API_KEY``, else the
    worker's room token (bound when the worker starts)."""
    transport = HttpTransport(
        base_url or default_base_url(),
        api_key or os.environ.get("OPENAI_API_KEY") or None,
        client=client,
    )
    return ResponsesAdapter(transport, model=model, **options)
