"""Our Anthropic adapter: Messages request bodies, the tool loop, keys and URLs, the CLI's choice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_cli import ROOM, env_for, invoke
from test_llm import StubRoom, fresh_context

from localmesh.fixtures.llm import ScriptedLLMAdapter, scripted_anthropic
from localmesh.scripted_llm import loads_script
from localmesh.worker import AnthropicMessagesAdapter, LLMError, MessagesAdapter, StorageToolkit
from localmesh.worker.anthropic import items_from_message, messages_from_items
from localmesh.worker.cli import room_app, worker_app

BASE = "http://llm.test/anthropic"
SCRIPT = Path(__file__).parent / "scripts" / "worker.yaml"
TWO_TURNS = """
rules:
  - match: {tool_result: false, api: messages}
    answer:
      calls: [{name: write_file, call_id: c1, arguments: {path: /a.txt, text: x, overwrite: true}}]
  - match: {tool_result: {call_id: c1, output: saved}}
    answer: {text: done}
"""


async def test_the_tool_loop_speaks_anthropic_messages(respx_mock) -> None:
    player = scripted_anthropic(respx_mock, TWO_TURNS, base_url=BASE)
    room = StubRoom()
    adapter = AnthropicMessagesAdapter(model="claude-sonnet-4-5", base_url=BASE, api_key="k")
    answer = await adapter.create_response(
        context=fresh_context(), toolkits=[StorageToolkit(room)]  # type: ignore[arg-type]
    )
    assert answer == "done"
    assert room.storage.uploads == [("a.txt", b"x", True)]
    first, second = (entry.request for entry in player.transcript)
    assert {(e.provider, e.api, e.model) for e in player.transcript} == {
        ("anthropic", "messages", "claude-sonnet-4-5")}
    assert (first["system"], first["max_tokens"], first["stream"]) == ("rule one\nrule two", 64000, False)
    # One flat list of tools: Anthropic has no namespaces.
    assert "write_file" in [tool["name"] for tool in first["tools"]]
    assert set(first["tools"][0]) == {"name", "description", "input_schema"}
    # The whole history again, tool results as a user turn of tool_result blocks.
    assert second["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "write the report"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "c1", "name": "write_file",
                                           "input": {"path": "/a.txt", "text": "x", "overwrite": True}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1",
                                      "content": [{"type": "text", "text": "the file was saved"}]}]},
    ]
    headers = respx_mock.calls[0].request.headers
    assert (headers["x-api-key"], headers["anthropic-version"]) == ("k", "2023-06-01")
    assert "authorization" not in headers


def _comparable(request: dict[str, Any]) -> dict[str, Any]:
    tools = [{"name": t["name"], "input_schema": _without_descriptions(t["input_schema"])}
             for t in request.get("tools", [])]
    return {"model": request["model"], "max_tokens": request["max_tokens"],
            "messages": request["messages"], "tools": tools}


def _without_descriptions(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_descriptions(v) for k, v in value.items() if k != "description"}
    if isinstance(value, list):
        return [_without_descriptions(v) for v in value]
    return value


@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")
async def test_request_bodies_match_the_real_meshagent_adapter(respx_mock, tmp_path) -> None:
    """The real AnthropicMessagesAdapter (it streams; we do not) and ours ask the same thing."""
    from meshagent.anthropic import AnthropicMessagesAdapter as RealAdapter
    from meshagent.api.participant import Participant
    from meshagent.tools.storage import StorageToolkit as RealStorage
    from meshagent.tools.storage import StorageToolLocalMount

    theirs = scripted_anthropic(respx_mock, TWO_TURNS, base_url=BASE)
    real = RealAdapter(model="claude-sonnet-4-5", base_url=BASE, api_key="k")
    context = real.create_session()
    context.append_rules(["rule one", "rule two"])
    context.append_user_message("write the report")
    await real.create_response(
        context=context,
        caller=Participant(id="p", attributes={"name": "w"}),
        toolkits=[RealStorage(mounts=[StorageToolLocalMount(path="/", local_path=str(tmp_path))])],
    )
    assert (tmp_path / "a.txt").read_text() == "x"

    ours = scripted_anthropic(respx_mock, TWO_TURNS, base_url=BASE)
    await AnthropicMessagesAdapter(model="claude-sonnet-4-5", base_url=BASE, api_key="k").create_response(
        context=fresh_context(), toolkits=[StorageToolkit(StubRoom())]  # type: ignore[arg-type]
    )
    theirs_requests = [_comparable(e.request) for e in theirs.transcript]
    ours_requests = [_comparable(e.request) for e in ours.transcript]
    assert len(theirs_requests) == len(ours_requests) == 2
    assert ours_requests == theirs_requests
    # Theirs streams and adds its own steering note to the rules; the rules come first in both.
    assert [e.transport for e in theirs.transcript] == ["stream", "stream"]
    assert theirs.transcript[0].request["system"].startswith("rule one\nrule two")


async def test_the_room_token_is_the_x_api_key_when_no_key_is_set(respx_mock, monkeypatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    scripted_anthropic(respx_mock, "fallback: {text: hi}", base_url=BASE)
    adapter = AnthropicMessagesAdapter(base_url=BASE).with_runtime_token("room-jwt")
    assert await adapter.create_response(context=fresh_context(), toolkits=[]) == "hi"
    assert respx_mock.calls[0].request.headers["x-api-key"] == "room-jwt"
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant")
    configured = AnthropicMessagesAdapter(base_url=BASE)
    assert configured.with_runtime_token("room-jwt") is configured


def test_base_url_model_and_max_tokens_come_from_the_environment(monkeypatch) -> None:
    for name in ("ANTHROPIC_BASE_URL", "ANTHROPIC_MODEL", "ANTHROPIC_MAX_TOKENS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MESHAGENT_API_URL", "http://127.0.0.1:9999/")
    adapter = AnthropicMessagesAdapter()
    assert adapter.transport.url == "http://127.0.0.1:9999/anthropic/v1/messages"
    assert adapter.model == "claude-3-5-sonnet-latest"  # the MeshAgent adapter's default
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://elsewhere/anthropic/")
    monkeypatch.setenv("ANTHROPIC_MODEL", "claude-opus-4-1")
    monkeypatch.setenv("ANTHROPIC_MAX_TOKENS", "1000")
    adapter = AnthropicMessagesAdapter()
    assert adapter.transport.url == "http://elsewhere/anthropic/v1/messages"
    assert adapter.request_body(fresh_context(), [])["max_tokens"] == 1000
    assert adapter.request_body(fresh_context(), [])["model"] == "claude-opus-4-1"


async def test_an_anthropic_error_body_becomes_an_llm_error(respx_mock) -> None:
    script = "rules: [{answer: {error: {status: 400, message: bad tools}}}]"
    scripted_anthropic(respx_mock, script, base_url=BASE)
    adapter = AnthropicMessagesAdapter(base_url=BASE, api_key="k")
    with pytest.raises(LLMError) as raised:
        await adapter.create_response(context=fresh_context(), toolkits=[])
    assert (raised.value.status, raised.value.message) == (400, "bad tools")
    assert len(respx_mock.calls) == 1  # a 400 is not retried


def test_parallel_calls_and_their_results_share_one_turn_each() -> None:
    items = [
        {"role": "user", "content": "go"},
        {"type": "function_call", "call_id": "a", "name": "f", "arguments": '{"x": 1}'},
        {"type": "function_call", "call_id": "b", "name": "g", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "a", "output": "one"},
        {"type": "function_call_output", "call_id": "b", "output": "two"},
    ]
    messages = messages_from_items(items)
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert [b["id"] for b in messages[1]["content"]] == ["a", "b"]
    assert [b["tool_use_id"] for b in messages[2]["content"]] == ["a", "b"]
    reply = {"content": [{"type": "text", "text": "hm"}, {"type": "tool_use", "id": "c", "name": "f",
                                                          "input": {"y": 2}}]}
    assert items_from_message(reply) == [
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "hm"}]},
        {"type": "function_call", "call_id": "c", "name": "f", "arguments": '{"y": 2}'},
    ]


async def test_the_scripted_adapter_plays_anthropic_shapes_in_process() -> None:
    room = StubRoom()
    adapter = ScriptedLLMAdapter(SCRIPT, provider="anthropic", model="claude-haiku-4-5")
    assert isinstance(adapter, MessagesAdapter)
    answer = await adapter.create_response(
        context=fresh_context(), toolkits=[StorageToolkit(room)]  # type: ignore[arg-type]
    )
    assert answer == "done"
    assert room.storage.uploads == [("out/report.txt", b"all good", True)]
    transcript = adapter.transport.player.transcript  # type: ignore[attr-defined]
    assert [(e.rule, e.api, e.provider, e.transport) for e in transcript] == [
        ("write-report", "messages", "anthropic", "python"), ("saved", "messages", "anthropic", "python")]
    assert transcript[1].response["content"] == [{"type": "text", "text": "done"}]


def test_the_scripted_adapter_refuses_an_unknown_provider() -> None:
    with pytest.raises(ValueError, match="provider must be"):
        ScriptedLLMAdapter(loads_script("fallback: {text: x}"), provider="mistral")  # type: ignore[arg-type]


async def test_worker_join_with_a_claude_model_calls_the_anthropic_endpoint(server, monkeypatch) -> None:
    """Like the MeshAgent CLI: `--model claude-*` picks the Anthropic adapter, on the server's
    /anthropic endpoint, with the room token."""
    for name in ("ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    server.llm.set_script(ROOM, loads_script(SCRIPT.read_text(), "worker.yaml"))
    env = env_for(server)
    await invoke(room_app, ["queue", "send", "--room", ROOM, "--queue", "tasks",
                            "--json", '{"prompt": "write the report"}'], env)
    result = await invoke(worker_app, ["join", "--room", ROOM, "--queue", "tasks", "--require-storage",
                                       "--model", "claude-sonnet-4-5", "--max-messages", "1"], env)
    assert "processed 1, failed 0" in result.output, result.output
    entries = server.llm.transcript(ROOM)
    assert [(e.provider, e.api, e.model, e.rule) for e in entries] == [
        ("anthropic", "messages", "claude-sonnet-4-5", "write-report"),
        ("anthropic", "messages", "claude-sonnet-4-5", "saved"),
    ]
    cat = await invoke(room_app, ["storage", "cat", "--room", ROOM, "out/report.txt"], env)
    assert cat.output == "all good"
