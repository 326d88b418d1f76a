"""fixtures.llm.scripted_openai: the openai client against a script, in-process via respx."""

from __future__ import annotations

import httpx
import openai
import pytest
import respx

from localmesh.fixtures.llm import scripted_openai
from localmesh.scripted_llm import loads_script

SCRIPT = """
rules:
  - {name: busy, times: once, answer: {error: {status: 429, message: wait, retry_after: 0.01}}}
  - {name: tool, match: {tool_result: false}, answer: {calls: [{name: lookup, arguments: {q: x}}]}}
  - {name: final, match: {tool_result: {name: lookup}}, answer: {text: done, delay: 3}}
"""


def make_client(**options: object) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url="http://llm.test/v1", api_key="k", **options)  # type: ignore[arg-type]


async def test_a_scripted_conversation_without_a_server(respx_mock: respx.MockRouter) -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    player = scripted_openai(respx_mock, SCRIPT, sleep=fake_sleep)
    async with make_client(max_retries=1) as llm:
        first = await llm.responses.create(model="m", input="look it up")
        call = first.output[0]
        assert (call.type, call.name, call.arguments) == ("function_call", "lookup", '{"q": "x"}')
        history = [
            {"role": "user", "content": "look it up"},
            call.model_dump(exclude_none=True),
            {"type": "function_call_output", "call_id": call.call_id, "output": "42"},
        ]
        second = await llm.responses.create(model="m", input=history)  # type: ignore[arg-type]
    assert second.output_text == "done"
    assert slept == [3]
    assert [(e.rule, e.turn, e.transport) for e in player.transcript] == [
        ("busy", 1, "request"),
        ("tool", 1, "request"),
        ("final", 2, "request"),
    ]


async def test_streaming_and_drop(respx_mock: respx.MockRouter) -> None:
    script = loads_script("rules: [{times: once, answer: {text: streamed}}, {answer: {drop: true}}]")
    player = scripted_openai(respx_mock, script, "http://other.test/v1/")
    async with openai.AsyncOpenAI(base_url="http://other.test/v1", api_key="k", max_retries=0) as llm:
        stream = await llm.responses.create(model="m", input="x", stream=True)
        kinds = [event.type async for event in stream]
        assert kinds == ["response.created", "response.output_item.done", "response.completed"]
        with pytest.raises(openai.APIConnectionError):
            await llm.responses.create(model="m", input="x")
    assert [e.dropped for e in player.transcript] == [False, True]


async def test_errors_and_bad_bodies(respx_mock: respx.MockRouter) -> None:
    scripted_openai(respx_mock, {"rules": [{"match": {"user": "hello"}, "answer": {"text": "hi"}}]})
    async with make_client(max_retries=0) as llm:
        with pytest.raises(openai.BadRequestError, match="no script rule matched"):
            await llm.responses.create(model="m", input="bye")
    async with httpx.AsyncClient() as http:
        reply = await http.post("http://llm.test/v1/responses", content=b"nope")
    assert reply.status_code == 400
