"""The wire formats' translations, without a server: what the engine sees of each API."""

from __future__ import annotations

import json

import pytest

from localmesh.scripted_llm import ScriptedError, ScriptPlayer, loads_script, transcript_json
from localmesh.scripted_llm.providers import ANTHROPIC_MESSAGES, CHAT_COMPLETIONS, WIRES
from localmesh.scripted_llm.providers.anthropic import stream_events
from localmesh.scripted_llm.providers.chat_completions import stream_chunks


def test_anthropic_blocks_become_responses_items() -> None:
    request = ANTHROPIC_MESSAGES.engine_request({
        "model": "claude-sonnet-4-5", "max_tokens": 10,
        "system": [{"type": "text", "text": "rule one"}, {"type": "text", "text": "rule two"}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "look"},
                                         {"type": "image", "source": {"type": "base64", "data": ""}}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hm", "signature": "s"},
                {"type": "text", "text": "calling"},
                {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "one"}]},
                {"type": "text", "text": "and then?"}]},
        ],
    })
    assert request["instructions"] == "rule one\nrule two"
    assert request["input"] == [
        {"role": "user", "content": "look"},
        {"type": "reasoning", "summary": [], "content": []},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "calling"}]},
        {"type": "function_call", "call_id": "t1", "name": "f", "arguments": '{"a": 1}'},
        {"type": "function_call_output", "call_id": "t1", "output": "one"},
        {"role": "user", "content": "and then?"},
    ]


def test_chat_messages_become_responses_items() -> None:
    request = CHAT_COMPLETIONS.engine_request({
        "model": "gpt-4.1",
        "messages": [
            {"role": "developer", "content": "rule"},
            {"role": "user", "content": [{"type": "text", "text": "go"}]},
            {"role": "assistant", "content": "thinking aloud", "refusal": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "done"},
        ],
    })
    assert request == {"model": "gpt-4.1", "instructions": "rule", "input": [
        {"role": "user", "content": "go"},
        {"type": "message", "role": "assistant",
         "content": [{"type": "output_text", "text": "thinking aloud"}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "done"},
    ]}


@pytest.mark.parametrize("api", ["messages", "chat.completions"])
def test_a_body_that_is_not_the_apis_is_refused_clearly(api: str) -> None:
    wire = WIRES[api]
    with pytest.raises(ScriptedError) as caught:
        wire.engine_request({"model": 3, "messages": "hi"})
    assert caught.value.status == 400 and caught.value.fatal
    assert caught.value.message.startswith("max_tokens: Field required" if api == "messages"
                                           else "messages: 'hi' is not of type 'array'")


def test_the_streams_carry_exactly_the_whole_reply() -> None:
    player = ScriptPlayer(loads_script(
        "rules: [{answer: {calls: [{name: f, arguments: {text: " + "x" * 100 + "}}, {name: g}]}}]"))
    question = [{"role": "user", "content": "q"}]
    message = player.play({"model": "m", "max_tokens": 5, "messages": question},
                          wire=ANTHROPIC_MESSAGES, provider="anthropic").response
    assert message is not None
    events = stream_events(message)
    starts = [e["content_block"] for e in events if e["type"] == "content_block_start"]
    assert [(s["type"], s["name"]) for s in starts] == [("tool_use", "f"), ("tool_use", "g")]
    for index, block in enumerate(message["content"]):
        pieces = [e["delta"]["partial_json"] for e in events
                  if e["type"] == "content_block_delta" and e["index"] == index]
        assert json.loads("".join(pieces)) == block["input"]

    completion = player.play({"model": "m", "messages": [{"role": "user", "content": "q"}]},
                             wire=CHAT_COMPLETIONS).response
    assert completion is not None
    chunks = stream_chunks(completion, include_usage=False)
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    deltas = [c["choices"][0]["delta"] for c in chunks]
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    expected = completion["choices"][0]["message"]["tool_calls"]
    assert [c["id"] for c in calls if "id" in c] == [t["id"] for t in expected]
    for index, call in enumerate(expected):
        pieces = [c["function"]["arguments"] for c in calls if c["index"] == index]
        assert "".join(pieces) == call["function"]["arguments"]
    assert "usage" not in chunks[-1]


def test_the_same_anthropic_flow_gives_the_same_transcript() -> None:
    def run() -> str:
        player = ScriptPlayer(loads_script("fallback: {text: hi}"), room="r")
        for _ in range(2):
            player.play({"model": "claude-sonnet-4-5", "max_tokens": 5,
                         "messages": [{"role": "user", "content": "q"}]},
                        transport="stream", wire=ANTHROPIC_MESSAGES, provider="anthropic")
        return transcript_json(player.transcript)

    text = run()
    assert text == run()
    assert '"provider": "anthropic"' in text and '"api": "messages"' in text
    assert '"model": "claude-sonnet-4-5"' in text
