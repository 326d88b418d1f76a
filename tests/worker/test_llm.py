"""The Responses adapter: request bodies, the tool loop, retries, and both transports."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from localmesh.fixtures.llm import ScriptedLLMAdapter
from localmesh.worker import (
    Backoff,
    ChatContext,
    LLMError,
    OpenAIResponsesAdapter,
    StorageToolkit,
)

BASE = "http://llm.test/v1"
SCRIPT = Path(__file__).parent / "scripts" / "worker.yaml"
CALL = {
    "type": "function_call", "call_id": "c1", "name": "write_file", "namespace": "storage",
    "arguments": json.dumps({"path": "/a.txt", "text": "x", "overwrite": True}),
}
ANSWER = {"type": "message", "role": "assistant",
          "content": [{"type": "output_text", "text": "done"}]}


class RecordingStorage:
    def __init__(self) -> None:
        self.uploads: list[tuple[str, bytes, bool]] = []

    async def upload(self, path: str, data: bytes, overwrite: bool = False, **_: Any) -> None:
        self.uploads.append((path, data, overwrite))


class StubRoom:
    token = "room-jwt"

    def __init__(self) -> None:
        self.storage = RecordingStorage()


def two_turns(bodies: list[dict[str, Any]]):
    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        output = [CALL] if len(bodies) == 1 else [ANSWER]
        return httpx.Response(200, json={"id": f"resp_{len(bodies)}", "output": output})

    return handler


def fresh_context() -> ChatContext:
    context = ChatContext(["rule one", "rule two"])
    context.append_user_message("write the report")
    return context


@respx.mock
async def test_the_tool_loop_runs_calls_and_returns_the_answer() -> None:
    bodies: list[dict[str, Any]] = []
    respx.post(f"{BASE}/responses").mock(side_effect=two_turns(bodies))
    room = StubRoom()
    adapter = OpenAIResponsesAdapter(base_url=BASE, api_key="k")
    answer = await adapter.create_response(
        context=fresh_context(), toolkits=[StorageToolkit(room)]  # type: ignore[arg-type]
    )
    assert answer == "done"
    assert room.storage.uploads == [("a.txt", b"x", True)]
    first, second = bodies
    assert first["instructions"] == "rule one\nrule two"
    assert first["tools"][0]["type"] == "namespace" and first["tools"][0]["name"] == "storage"
    assert (first["store"], first["stream"], first["max_output_tokens"]) == (False, False, 32000)
    # Request mode resends the whole history with the tool's output.
    assert second["input"] == [
        {"role": "user", "content": "write the report"},
        CALL,
        {"type": "function_call_output", "call_id": "c1", "output": "the file was saved"},
    ]


def _without_descriptions(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_descriptions(v) for k, v in value.items() if k != "description"}
    if isinstance(value, list):
        return [_without_descriptions(v) for v in value]
    return value


@respx.mock
async def test_request_bodies_match_the_real_meshagent_adapter(tmp_path) -> None:
    from meshagent.api.participant import Participant
    from meshagent.openai import OpenAIResponsesAdapter as RealAdapter
    from meshagent.tools.storage import StorageToolkit as RealStorage
    from meshagent.tools.storage import StorageToolLocalMount

    theirs: list[dict[str, Any]] = []
    respx.post(f"{BASE}/responses").mock(side_effect=two_turns(theirs))
    real = RealAdapter(mode="request", base_url=BASE, api_key="k", context_management="none")
    context = real.create_session()
    context.append_rules(["rule one", "rule two"])
    context.append_user_message("write the report")
    await real.create_response(
        context=context,
        caller=Participant(id="p", attributes={"name": "w"}),
        toolkits=[RealStorage(mounts=[StorageToolLocalMount(path="/", local_path=str(tmp_path))])],
    )

    ours: list[dict[str, Any]] = []
    respx.post(f"{BASE}/responses").mock(side_effect=two_turns(ours))
    await OpenAIResponsesAdapter(base_url=BASE, api_key="k").create_response(
        context=fresh_context(), toolkits=[StorageToolkit(StubRoom())]  # type: ignore[arg-type]
    )
    # Descriptions are prose (ours are our own words); everything a script matches is equal.
    assert _without_descriptions(ours) == _without_descriptions(theirs)


@respx.mock
async def test_retries_honour_retry_after_and_back_off_on_5xx() -> None:
    route = respx.post(f"{BASE}/responses").mock(side_effect=[
        httpx.Response(429, json={"error": {"message": "slow down"}}, headers={"retry-after": "7"}),
        httpx.Response(503, json={"error": {"message": "busy"}}),
        httpx.Response(200, json={"id": "r", "output": [ANSWER]}),
    ])
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)

    adapter = OpenAIResponsesAdapter(
        base_url=BASE, api_key="k", sleep=sleep,
        retry_backoff=Backoff(base=1.0, cap=30.0, rng=random.Random(2)),
    )
    assert await adapter.create_response(context=fresh_context(), toolkits=[]) == "done"
    assert route.call_count == 3
    assert slept[0] == 7.0  # retry-after wins over our own delay
    assert 1.0 <= slept[1] <= 2.0  # second attempt's ceiling is 2 s


@respx.mock
async def test_a_client_error_fails_at_once() -> None:
    route = respx.post(f"{BASE}/responses").mock(
        return_value=httpx.Response(400, json={"error": {"message": "invalid schema"}})
    )
    adapter = OpenAIResponsesAdapter(base_url=BASE, api_key="k")
    with pytest.raises(LLMError) as raised:
        await adapter.create_response(context=fresh_context(), toolkits=[])
    assert (raised.value.status, raised.value.message) == (400, "invalid schema")
    assert route.call_count == 1


@respx.mock
async def test_retries_are_capped() -> None:
    route = respx.post(f"{BASE}/responses").mock(return_value=httpx.Response(500, json={}))

    async def no_sleep(delay: float) -> None:
        pass

    adapter = OpenAIResponsesAdapter(base_url=BASE, api_key="k", max_retries=2, sleep=no_sleep)
    with pytest.raises(LLMError):
        await adapter.create_response(context=fresh_context(), toolkits=[])
    assert route.call_count == 3


@respx.mock
async def test_the_room_token_is_the_bearer_when_no_key_is_set(monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    route = respx.post(f"{BASE}/responses").mock(
        return_value=httpx.Response(200, json={"id": "r", "output": [ANSWER]})
    )
    adapter = OpenAIResponsesAdapter(base_url=BASE).with_runtime_token("room-jwt")
    await adapter.create_response(context=fresh_context(), toolkits=[])
    assert route.calls[0].request.headers["authorization"] == "Bearer room-jwt"


async def test_a_configured_key_is_not_replaced_by_the_room_token(monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    adapter = OpenAIResponsesAdapter(base_url=BASE)
    assert adapter.with_runtime_token("room-jwt") is adapter


def test_base_url_comes_from_the_environment(monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("MESHAGENT_API_URL", "http://127.0.0.1:9999/")
    assert OpenAIResponsesAdapter().transport.base_url == "http://127.0.0.1:9999/openai/v1"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://elsewhere/v1")
    assert OpenAIResponsesAdapter().transport.base_url == "http://elsewhere/v1"


async def test_the_scripted_adapter_plays_a_script_in_process() -> None:
    room = StubRoom()
    adapter = ScriptedLLMAdapter(SCRIPT)
    answer = await adapter.create_response(
        context=fresh_context(), toolkits=[StorageToolkit(room)]  # type: ignore[arg-type]
    )
    assert answer == "done"
    assert room.storage.uploads == [("out/report.txt", b"all good", True)]


async def test_a_scripted_error_raises_an_llm_error_with_its_status() -> None:
    context = ChatContext()
    context.append_user_message("explode")
    with pytest.raises(LLMError) as raised:
        await ScriptedLLMAdapter(SCRIPT).create_response(context=context, toolkits=[])
    assert raised.value.status == 400


async def test_an_unknown_tool_is_reported_to_the_model() -> None:
    script = {"rules": [
        {"match": {"tool_result": False},
         "answer": {"calls": [{"name": "no_such_tool", "arguments": {}}]}},
        {"match": {"tool_result": {"output": "unable to complete"}}, "answer": {"text": "noted"}},
    ]}
    assert await ScriptedLLMAdapter(script).create_response(
        context=fresh_context(), toolkits=[]
    ) == "noted"


def test_a_long_yaml_script_string_is_not_taken_for_a_path() -> None:
    text = "fallback: {text: " + "x" * 400 + "}"  # far beyond a file name's limit
    adapter = ScriptedLLMAdapter(text)
    assert adapter.transport.player.script.fallback is not None
