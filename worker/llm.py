"""LLM adapters for the Worker: one OpenAI Responses turn loop over a pluggable transport.

``ResponsesAdapter`` builds request bodies shaped like MeshAgent's
``OpenAIResponsesAdapter`` in request mode (§9.2), runs the function calls of each
response through the toolkits, and loops until the model answers with a ``message``.
Where the response comes from is the transport's job:

``HttpTransport`` posts to ``{base}/responses`` (OpenAI, or the emulator's scripted endpoint);
the harness plugs in a transport that plays a script in process
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

from localmesh.worker.backoff import Backoff
from localmesh.worker.context import ChatContext
from localmesh.worker.tool_results import ToolResponseAdapter
from localmesh.worker.tools import Tool, Toolkit

logger = logging.getLogger("localmesh.worker.llm")

# The MeshAgent adapter's defaults, so that requests look the same from both workers.
DEFAULT_MODEL = "gpt-6.1-sol"
MAX_OUTPUT_TOKENS = 32000
RETRYABLE_STATUSES = frozenset({408, 409, 429})
Sleep = Callable[[float], Awaitable[None]]


class LLMError(Exception):
    """The LLM endpoint failed. ``status`` is the HTTP status (or the scripted one)."""

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(message if status is None else f"LLM error {status}: {message}")
        self.message = message
        self.status = status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        # None = no response at all (connection error): worth another try.
        return self.status is None or self.status in RETRYABLE_STATUSES or self.status >= 500


class ResponsesTransport(Protocol):
    async def create(self, body: dict[str, Any], *, conversation: str) -> dict[str, Any]:
        """Return a Responses JSON for ``body``, or raise ``LLMError``."""
        ...


# ---------------------------------------------------------------- transports


def default_base_url(api_url: str | None = None) -> str:
    """``OPENAI_BASE_URL``, else ``{api_url}/openai/v1`` (the emulator's endpoint), where
    ``api_url`` defaults to ``MESHAGENT_API_URL``, else a local ``localmesh serve``."""
    explicit = os.environ.get("OPENAI_BASE_URL")
    if explicit:
        return explicit.rstrip("/")
    api_url = api_url or os.environ.get("MESHAGENT_API_URL", "http://127.0.0.1:8765")
    return f"{api_url.rstrip('/')}/openai/v1"


class HttpTransport:
    """Non-streaming ``POST {base_url}/responses`` with a bearer token."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        client: httpx.AsyncClient | None = None,
        timeout: float = 120.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self._client = client
        self._timeout = timeout

    def with_api_key(self, api_key: str) -> HttpTransport:
        return HttpTransport(self.base_url, api_key, client=self._client, timeout=self._timeout)

    async def create(self, body: dict[str, Any], *, conversation: str) -> dict[str, Any]:
        headers = {"Accept": "application/json", "User-Agent": "localmesh-worker"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        url = f"{self.base_url}/responses"
        try:
            if self._client is not None:
                response = await self._client.post(url, json=body, headers=headers)
            else:
                async with httpx.AsyncClient(timeout=self._timeout) as client:
                    response = await client.post(url, json=body, headers=headers)
        except httpx.HTTPError as error:
            raise LLMError(f"could not reach {url}: {error}") from None
        if response.status_code >= 400:
            raise LLMError(_error_message(response), response.status_code, _retry_after(response))
        try:
            return response.json()
        except ValueError:
            raise LLMError(f"{url} did not return JSON", response.status_code) from None


def _error_message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
    except (ValueError, AttributeError):
        pass
    return response.text[:500] or response.reason_phrase


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


# ---------------------------------------------------------------- the turn loop


class ResponsesAdapter:
    """Runs one task to its final answer against a Responses transport.

    Retries 408/409/429/5xx and connection errors up to ``max_retries`` times with
    capped, jittered backoff, waiting ``retry-after`` instead when the server sends it.
    """

    def __init__(
        self,
        transport: ResponsesTransport,
        *,
        model: str | None = None,
        tool_adapter: ToolResponseAdapter | None = None,
        max_output_tokens: int | None = MAX_OUTPUT_TOKENS,
        max_turns: int = 50,
        max_retries: int = 5,
        retry_backoff: Backoff | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.transport = transport
        self.model = model or os.environ.get("OPENAI_MODEL") or DEFAULT_MODEL
        self.tool_adapter = tool_adapter or ToolResponseAdapter()
        self.max_output_tokens = max_output_tokens
        self.max_turns = max_turns
        self.max_retries = max_retries
        self._retry_backoff = retry_backoff or Backoff(base=1.0, cap=30.0)
        self._sleep = sleep
        # Bind the room token only when no key was configured (as the MeshAgent Worker does).
        self._bind_token = isinstance(transport, HttpTransport) and transport.api_key is None

    def default_model(self) -> str:
        return self.model

    def create_session(self) -> ChatContext:
        return ChatContext()

    def with_runtime_token(self, token: str) -> ResponsesAdapter:
        """The adapter to use inside a room: the room token authenticates the LLM calls
        unless an API key was configured."""
        if not self._bind_token:
            return self
        assert isinstance(self.transport, HttpTransport)
        bound = copy.copy(self)
        bound.transport = self.transport.with_api_key(token)
        bound._bind_token = False
        return bound

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
            output = [item for item in response.get("output") or [] if isinstance(item, dict)]
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
