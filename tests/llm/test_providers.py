"""Every provider the emulator serves, seen from the plain ``anthropic`` and ``openai`` clients.

Each client gets a scripted tool call and then the final message, streamed and not; bad
bodies, refused keys and unknown paths get that provider's own error shape; the transcript
and the rules know which provider, API and model each exchange used.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anthropic
import httpx
import openai
import pytest
from llm_harness import LLMServer

ROOM = "providers"
TOOL_SCRIPT = """
rules:
  - name: call
    match: {user: "(?i)weather", tool_result: false}
    answer:
      calls: [{name: get_weather, call_id: toolu_1, arguments: {city: Paris, units: [C, F]}}]
  - name: answer
    match: {tool_result: {call_id: toolu_1, output: "18"}}
    answer: {text: "It is 18 degrees in Paris: a long answer, cut in pieces when streamed."}
"""
WEATHER_TOOL_ANTHROPIC = {
    "name": "get_weather", "description": "the weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
WEATHER_TOOL_OPENAI = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}
FINAL = "It is 18 degrees in Paris: a long answer, cut in pieces when streamed."
ARGUMENTS = {"city": "Paris", "units": ["C", "F"]}


@asynccontextmanager
async def anthropic_client(llm: LLMServer, room: str = ROOM, prefix: str = "/anthropic",
                           **options) -> AsyncIterator[anthropic.AsyncAnthropic]:
    # The real adapter sends the room token as x-api-key; the API key plus the room header works too.
    client = anthropic.AsyncAnthropic(base_url=f"{llm.url}{prefix}", api_key=llm.room_token(room),
                                      **{"max_retries": 0, **options})
    async with client:
        yield client


@asynccontextmanager
async def openai_client(llm: LLMServer, room: str = ROOM, prefix: str = "/openai/v1",
                        **options) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=f"{llm.url}{prefix}", api_key=llm.room_token(room),
                                **{"max_retries": 0, **options})
    async with client:
        yield client


# ---------------------------------------------------------------- Anthropic Messages


async def _anthropic_turns(llm: LLMServer, *, stream: bool, prefix: str = "/anthropic") -> list:
    """Ask, run the tool call, send its result; the two Messages the client assembled."""
    async with anthropic_client(llm, prefix=prefix) as client:
        history: list[dict] = [{"role": "user", "content": "What is the weather in Paris?"}]
        replies = []
        for _ in range(2):
            request = dict(model="claude-sonnet-4-5", max_tokens=1024, system="Be brief.",
                           messages=history, tools=[WEATHER_TOOL_ANTHROPIC])
            if stream:
                async with client.messages.stream(**request) as events:
                    seen = [event.type async for event in events]
                    reply = await events.get_final_message()
                assert seen[0] == "message_start" and seen[-1] == "message_stop"
            else:
                reply = await client.messages.create(**request)
            replies.append(reply)
            history.append({"role": "assistant", "content": [b.model_dump() for b in reply.content]})
            calls = [b for b in reply.content if b.type == "tool_use"]
            history.append({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": c.id, "content": "18 degrees"} for c in calls]})
        return replies


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_the_anthropic_client_gets_a_tool_call_then_the_final_message(
    llm_server: LLMServer, stream: bool
) -> None:
    llm_server.use_script(ROOM, TOOL_SCRIPT)
    first, second = await _anthropic_turns(llm_server, stream=stream)
    (call,) = first.content
    assert (call.type, call.id, call.name, call.input) == ("tool_use", "toolu_1", "get_weather", ARGUMENTS)
    assert (first.stop_reason, first.role, first.model) == ("tool_use", "assistant", "claude-sonnet-4-5")
    assert [(b.type, b.text) for b in second.content] == [("text", FINAL)]
    assert second.stop_reason == "end_turn"
    assert second.usage.input_tokens > 0 and second.usage.output_tokens > 0
    entries = llm_server.hub.transcript(ROOM)
    assert [(e.provider, e.api, e.model, e.rule, e.turn, e.conversation) for e in entries] == [
        ("anthropic", "messages", "claude-sonnet-4-5", "call", 1, "conv_0001"),
        ("anthropic", "messages", "claude-sonnet-4-5", "answer", 2, "conv_0001"),
    ]
    assert {e.transport for e in entries} == {"stream" if stream else "request"}
    assert entries[0].response["content"][0]["input"] == ARGUMENTS  # the transcript is in Anthropic's shape


async def test_the_anthropic_stream_is_the_documented_event_sequence(llm_server: LLMServer) -> None:
    llm_server.use_script(ROOM, TOOL_SCRIPT)
    body = {"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": True,
            "messages": [{"role": "user", "content": "weather?"}]}
    async with llm_server.admin() as http:
        reply = await http.post("/anthropic/v1/messages", json=body, headers={"X-Localmesh-Room": ROOM})
    assert reply.headers["content-type"].startswith("text/event-stream")
    events = []
    for block in reply.text.strip().split("\n\n"):
        name, data = block.split("\n")
        event = json.loads(data.removeprefix("data: "))
        assert name == f"event: {event['type']}"  # the anthropic client dispatches on this line
        events.append(event)
    kinds = [e["type"] for e in events]
    deltas = kinds.count("content_block_delta")
    assert kinds == ["message_start", "ping", "content_block_start", *["content_block_delta"] * deltas,
                     "content_block_stop", "message_delta", "message_stop"]
    assert deltas > 1  # the arguments arrive in pieces, as partial JSON
    opening = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}
    assert events[2]["content_block"] == opening
    pieces = "".join(e["delta"]["partial_json"] for e in events if e["type"] == "content_block_delta")
    assert json.loads(pieces) == ARGUMENTS
    assert {e["delta"]["type"] for e in events if e["type"] == "content_block_delta"} == {"input_json_delta"}
    assert events[-2]["delta"]["stop_reason"] == "tool_use" and events[-2]["usage"]["output_tokens"] > 0
    assert events[0]["message"]["content"] == [] and events[0]["message"]["stop_reason"] is None


async def test_grok_serves_messages_and_responses(llm_server: LLMServer) -> None:
    """MeshAgent's proxy serves grok-* models as Anthropic Messages and as OpenAI Responses."""
    llm_server.use_script(ROOM, TOOL_SCRIPT)
    first, second = await _anthropic_turns(llm_server, stream=True, prefix="/grok")
    assert second.content[0].text == FINAL
    async with openai_client(llm_server, prefix="/grok/v1") as client:
        response = await client.responses.create(model="grok-4.6", input="the weather?")
    assert response.output[0].type == "function_call"
    entries = llm_server.hub.transcript(ROOM)
    assert [(e.provider, e.api) for e in entries] == [
        ("grok", "messages"), ("grok", "messages"), ("grok", "responses")]


async def test_count_tokens_answers_the_same_estimate_as_usage(llm_server: LLMServer) -> None:
    llm_server.use_script(ROOM, "fallback: {text: ok}")
    messages = [{"role": "user", "content": "count me"}]
    async with anthropic_client(llm_server) as client:
        counted = await client.messages.count_tokens(model="claude-sonnet-4-5", messages=messages)
        reply = await client.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=messages)
    assert counted.input_tokens == reply.usage.input_tokens > 0
    assert len(llm_server.hub.transcript(ROOM)) == 1  # counting is not an exchange


@pytest.mark.parametrize(("body", "message"), [
    ({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "x"}]},
     "max_tokens: Field required"),
    ({"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": []}, "messages: must not be empty"),
    ({"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [{"role": "tool", "content": "x"}]},
     "messages.0.role: 'tool' is not one of ['user', 'assistant']"),
    ({"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [
        {"role": "user", "content": [{"type": "tool_result", "content": "x"}]}]},
     "messages.0.content.0.tool_use_id: Field required"),
])
async def test_a_bad_messages_body_gets_anthropics_error_shape(
    llm_server: LLMServer, body: dict, message: str
) -> None:
    # Raw HTTP: the anthropic client itself refuses some of these before sending them.
    async with httpx.AsyncClient(base_url=llm_server.url) as http:
        reply = await http.post("/anthropic/v1/messages", json=body,
                                headers={"x-api-key": llm_server.room_token(ROOM)})
    assert reply.status_code == 400
    assert reply.json() == {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
    (entry,) = llm_server.hub.transcript(ROOM)
    assert (entry.rule, entry.error["status"], entry.api) == (None, 400, "messages")  # type: ignore[index]


async def test_a_request_nobody_scripted_is_a_400_naming_every_rule(llm_server: LLMServer) -> None:
    llm_server.use_script(ROOM, "rules: [{name: openai-only, match: {provider: openai}, answer: {text: hi}}]")
    async with anthropic_client(llm_server) as client:
        with pytest.raises(anthropic.BadRequestError) as caught:
            await client.messages.create(model="claude-sonnet-4-5", max_tokens=5,
                                         messages=[{"role": "user", "content": "hello"}])
    assert caught.value.body["error"]["message"] == (  # type: ignore[index]
        "localmesh: no script rule matched this request (turn 1, latest user message 'hello'); "
        "tried: rules[0] 'openai-only' (provider 'anthropic' did not match /openai/). "
        "Add a rule or a fallback to test.yaml."
    )
    assert [e.rule for e in llm_server.hub.transcript(ROOM)] == [None]


async def test_scripted_errors_in_anthropics_shape_and_retries(llm_server: LLMServer) -> None:
    llm_server.use_script(ROOM, """
        rules:
          - {times: once, answer: {error: {status: 529, message: busy, retry_after: 0}}}
          - {times: once, answer: {error: {status: 429, message: slow down, type: my_type}}}
          - {answer: {text: at last}}
    """)
    async with anthropic_client(llm_server, max_retries=2) as client:
        reply = await client.messages.create(model="claude-haiku-4-5", max_tokens=5,
                                             messages=[{"role": "user", "content": "x"}])
        assert reply.content[0].text == "at last"  # the client retried the 529 and the 429
    assert [e.rule for e in llm_server.hub.transcript(ROOM)] == ["rules[0]", "rules[1]", "rules[2]"]
    llm_server.hub.reset(ROOM)
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    async with llm_server.admin() as http:
        first = await http.post("/anthropic/v1/messages", headers={"X-Localmesh-Room": ROOM}, json=body)
        second = await http.post("/anthropic/v1/messages", headers={"X-Localmesh-Room": ROOM}, json=body)
    assert (first.status_code, first.headers["retry-after"]) == (529, "0")
    assert first.json() == {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    assert second.json() == {"type": "error", "error": {"type": "my_type", "message": "slow down"}}


async def test_an_in_stream_error_event_reaches_the_anthropic_client(llm_server: LLMServer) -> None:
    llm_server.use_script(ROOM, "fallback: {error: {websocket: true, status: 529, message: overloaded}}")
    async with anthropic_client(llm_server) as client:
        with pytest.raises(anthropic.APIStatusError, match="overloaded"):
            async with client.messages.stream(model="m", max_tokens=5,
                                              messages=[{"role": "user", "content": "x"}]) as events:
                async for _ in events:
                    pass


async def test_a_drop_is_a_connection_error_for_the_anthropic_client(llm_server: LLMServer) -> None:
    llm_server.use_script(ROOM, "rules: [{answer: {drop: true}}]")
    async with anthropic_client(llm_server) as client:
        with pytest.raises(anthropic.APIConnectionError):
            await client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}])


# ---------------------------------------------------------------- OpenAI Chat Completions


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_the_openai_client_gets_a_chat_tool_call_then_the_final_message(
    llm_server: LLMServer, stream: bool
) -> None:
    llm_server.use_script(ROOM, TOOL_SCRIPT)
    messages: list = [{"role": "system", "content": "Be brief."},
                      {"role": "user", "content": "What is the weather in Paris?"}]
    async with openai_client(llm_server) as client:
        replies = []
        for _ in range(2):
            if stream:
                chunks = await client.chat.completions.create(
                    model="gpt-4.1", messages=messages, tools=[WEATHER_TOOL_OPENAI], stream=True,
                    stream_options={"include_usage": True})
                message, finish, usage = await _assemble(chunks)
            else:
                completion = await client.chat.completions.create(
                    model="gpt-4.1", messages=messages, tools=[WEATHER_TOOL_OPENAI])
                choice = completion.choices[0]
                message, finish, usage = choice.message.model_dump(), choice.finish_reason, completion.usage
            replies.append((message, finish))
            assert usage is not None and usage.prompt_tokens > 0
            messages.append(message)
            messages += [{"role": "tool", "tool_call_id": call["id"], "content": "18 degrees"}
                         for call in message.get("tool_calls") or ()]
    (first, first_finish), (second, second_finish) = replies
    (call,) = first["tool_calls"]
    assert (call["id"], call["function"]["name"], first_finish) == ("toolu_1", "get_weather", "tool_calls")
    assert json.loads(call["function"]["arguments"]) == ARGUMENTS
    assert not first.get("content")
    assert (second["content"], second_finish, second.get("tool_calls")) == (FINAL, "stop", None)
    entries = llm_server.hub.transcript(ROOM)
    assert [(e.provider, e.api, e.model, e.rule, e.turn) for e in entries] == [
        ("openai", "chat.completions", "gpt-4.1", "call", 1),
        ("openai", "chat.completions", "gpt-4.1", "answer", 2),
    ]
    assert entries[0].request["messages"][0] == {"role": "system", "content": "Be brief."}


async def _assemble(chunks) -> tuple[dict, str | None, object]:
    """The assistant message, finish reason and usage of a streamed chat completion."""
    content, calls, finish, usage = "", {}, None, None
    async for chunk in chunks:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            content += choice.delta.content or ""
            for part in choice.delta.tool_calls or ():
                call = calls.setdefault(part.index, {"id": None, "type": "function",
                                                     "function": {"name": "", "arguments": ""}})
                call["id"] = part.id or call["id"]
                if part.function is not None:
                    call["function"]["name"] += part.function.name or ""
                    call["function"]["arguments"] += part.function.arguments or ""
    message: dict = {"role": "assistant", "content": content or None}
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    return message, finish, usage


@pytest.mark.parametrize(("body", "message", "param"), [
    ({"messages": [{"role": "user", "content": "x"}]}, "model: Field required", "model"),
    ({"model": "m", "messages": [{"role": "tool", "content": "x"}]},
     "messages.0.tool_call_id: Field required", "messages.0.tool_call_id"),
    ({"model": "m", "n": 2, "messages": [{"role": "user", "content": "x"}]}, "n: 1 was expected", "n"),
])
async def test_a_bad_chat_body_gets_openais_error_shape(
    llm_server: LLMServer, body: dict, message: str, param: str
) -> None:
    async with llm_server.admin() as http:
        reply = await http.post("/openai/v1/chat/completions", json=body, headers={"X-Localmesh-Room": ROOM})
    assert reply.status_code == 400
    assert reply.json() == {"error": {"message": message, "type": "invalid_request_error",
                                      "param": param, "code": None}}


async def test_an_in_stream_error_reaches_the_openai_chat_client(llm_server: LLMServer) -> None:
    llm_server.use_script(ROOM, "rules: [{answer: {error: {websocket: true, message: mid-stream failure}}}]")
    async with openai_client(llm_server) as client:
        chunks = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}], stream=True)
        with pytest.raises(openai.APIError, match="mid-stream failure"):
            async for _ in chunks:
                pass


# ---------------------------------------------------------------- all of them


@pytest.mark.parametrize(("method", "path", "shape"), [
    ("GET", "/anthropic/v1/models", "anthropic"),
    ("POST", "/anthropic/v1/messages/batches", "anthropic"),
    ("GET", "/anthropic/v1/messages", "anthropic"),
    ("POST", "/openai/v1/embeddings", "openai"),
    ("GET", "/openai/v1/responses", "openai"),
    ("POST", "/grok/v1/chat/completions", "openai"),
])
async def test_an_unknown_path_gets_the_providers_error_saying_what_is_served(
    llm_server: LLMServer, method: str, path: str, shape: str
) -> None:
    async with llm_server.admin() as http:
        reply = await http.request(method, path, json={})
    assert reply.status_code == 404
    body = reply.json()
    if shape == "anthropic":
        assert body["type"] == "error" and body["error"]["type"] == "not_found_error"
        message = body["error"]["message"]
    else:
        assert body["error"]["type"] == "invalid_request_error"
        message = body["error"]["message"]
    assert message.startswith(f"localmesh does not emulate {method} {path}; under /")
    assert "docs/llm-providers.md" in message


@pytest.mark.parametrize(
    "path", ["/anthropic/v1/messages", "/openai/v1/chat/completions", "/grok/v1/responses"])
async def test_a_refused_key_is_a_401_in_the_providers_shape(llm_server: LLMServer, path: str) -> None:
    async with httpx.AsyncClient(base_url=llm_server.url) as http:
        by_header = await http.post(path, json={}, headers={"x-api-key": "not-a-token"})
        without = await http.post(path, json={})
    for reply in (by_header, without):
        assert reply.status_code == 401
        error = reply.json()["error"]
        anthropic_api = path.startswith("/anthropic")
        assert error["type"] == ("authentication_error" if anthropic_api else "invalid_request_error")
    assert "JWT" in by_header.json()["error"]["message"]


async def test_a_room_token_in_either_header_speaks_for_its_room(llm_server: LLMServer) -> None:
    llm_server.use_script("a", "fallback: {text: room a}")
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    async with httpx.AsyncClient(base_url=llm_server.url) as http:
        token = llm_server.room_token("a")
        as_key = await http.post("/anthropic/v1/messages", json=body, headers={"x-api-key": token})
        as_bearer = await http.post("/anthropic/v1/messages", json=body,
                                    headers={"Authorization": f"Bearer {token}"})
    assert as_key.json()["content"][0]["text"] == as_bearer.json()["content"][0]["text"] == "room a"


async def test_one_script_answers_each_provider_by_rule(llm_server: LLMServer) -> None:
    llm_server.use_script(ROOM, """
        rules:
          - {match: {provider: anthropic}, answer: {text: from the claude rule}}
          - {match: {provider: grok, api: responses}, answer: {text: from the grok rule}}
          - {match: {api: chat\\.completions, model: gpt-.*}, answer: {text: from the chat rule}}
          - {answer: {text: from the responses rule}}
    """)
    async with anthropic_client(llm_server) as claude:
        said = await claude.messages.create(model="claude-sonnet-4-5", max_tokens=5,
                                            messages=[{"role": "user", "content": "x"}])
        assert said.content[0].text == "from the claude rule"
    async with openai_client(llm_server, prefix="/grok/v1") as grok:
        assert (await grok.responses.create(model="grok-4.6", input="x")).output_text == "from the grok rule"
    async with openai_client(llm_server) as gpt:
        chat = await gpt.chat.completions.create(model="gpt-4.1", messages=[{"role": "user", "content": "x"}])
        assert chat.choices[0].message.content == "from the chat rule"
        response = await gpt.responses.create(model="gpt-4.1", input="x")
        assert response.output_text == "from the responses rule"
