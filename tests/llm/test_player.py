"""ScriptPlayer and LLMHub in pure Python: matching, use counts, conversations, answers, transcripts."""

from __future__ import annotations

import json
import textwrap
from typing import Any

import pytest

from localmesh.emulator.llm import LLMHub
from localmesh.scripted_llm import (
    ScriptedDrop,
    ScriptedError,
    ScriptPlayer,
    load_demo_script,
    loads_script,
    transcript_json,
)


def make_player(text: str, **options: Any) -> ScriptPlayer:
    return ScriptPlayer(loads_script(textwrap.dedent(text), "t.yaml"), **options)


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def result(call: dict[str, Any], output: str) -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call["call_id"], "output": output}


def text_of(response: dict[str, Any]) -> str:
    return response["output"][-1]["content"][0]["text"]


async def ask(player: ScriptPlayer, *items: Any, **fields: Any) -> dict[str, Any]:
    return await player.respond({"model": "m", "input": list(items), **fields})


# ---------------------------------------------------------------- matching


async def test_user_regex_searches_the_latest_user_message() -> None:
    player = make_player(
        """
        rules:
          - {match: {user: weather}, answer: {text: sunny}}
          - {match: {user: '(?i)^HELLO'}, answer: {text: hi}}
        """
    )
    assert text_of(await ask(player, user("hello there"))) == "hi"
    earlier = [user("what is the weather"), {"role": "assistant", "content": "sunny"}]
    assert text_of(await ask(player, *earlier, user("Hello again"))) == "hi"
    assert text_of(await ask(player, user("the weather?"))) == "sunny"


async def test_user_text_is_read_from_content_parts() -> None:
    player = make_player("rules: [{match: {user: 'two'}, answer: {text: ok}}]")
    message = {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "one"}, {"type": "input_text", "text": "two"}],
    }
    assert text_of(await ask(player, message)) == "ok"
    assert text_of(await player.respond({"input": "a bare two"})) == "ok"


async def test_instructions_and_model() -> None:
    player = make_player(
        r"""
        rules:
          - {match: {instructions: pirate}, answer: {text: arr}}
          - {match: {model: 'gpt-4\.1'}, answer: {text: exact model}}
          - {match: {model: 'o[0-9]-.*'}, answer: {text: reasoning model}}
        """
    )
    assert text_of(await ask(player, user("x"), instructions="talk like a pirate")) == "arr"
    assert text_of(await player.respond({"model": "gpt-4.1", "input": "x"})) == "exact model"
    assert text_of(await player.respond({"model": "o3-mini", "input": "x"})) == "reasoning model"
    with pytest.raises(ScriptedError) as caught:
        await player.respond({"model": "gpt-4.1-mini", "input": "x"})  # the model must match whole
    assert "model 'gpt-4.1-mini' did not match /gpt-4\\.1/" in caught.value.message


async def test_turn_counts_earlier_replies_in_the_history() -> None:
    player = make_player(
        """
        rules:
          - {match: {turn: 1}, answer: {calls: [{name: a}, {name: b}]}}
          - {match: {turn: 2}, answer: {text: second}}
          - {match: {turn: 3}, answer: {text: third}}
        """
    )
    first = await ask(player, user("go"))
    a, b = first["output"]
    # Two calls of one response are one earlier reply.
    history = [user("go"), a, b, result(a, "A"), result(b, "B")]
    second = await ask(player, *history)
    assert text_of(second) == "second"
    third = await ask(player, *history, *second["output"], user("more"))
    assert text_of(third) == "third"
    assert [e.turn for e in player.transcript] == [1, 2, 3]


async def test_tool_result_true_false_and_object_forms() -> None:
    player = make_player(
        """
        rules:
          - match: {tool_result: false}
            answer: {calls: [{name: write_file, namespace: storage}, {name: ls}]}
          - {match: {tool_result: {name: ls, output: '^nothing$'}}, answer: {text: ls empty}}
          - {match: {tool_result: {name: storage.write_file, output: saved}}, answer: {text: saved}}
          - {match: {tool_result: {call_id: call_x_9}}, answer: {text: by call id}}
          - {match: {tool_result: true}, answer: {text: some result}}
        """
    )
    write, ls = (await ask(player, user("go")))["output"]
    start = [user("go"), write, ls]
    assert text_of(await ask(player, *start, result(write, "x"), result(ls, "nothing"))) == "ls empty"
    assert text_of(await ask(player, *start, result(write, "the file was saved"))) == "saved"
    foreign = {"type": "function_call_output", "call_id": "call_x_9", "output": "?"}
    assert text_of(await ask(player, *start, foreign)) == "by call id"
    assert text_of(await ask(player, *start, result(ls, "a.txt"))) == "some result"


async def test_tool_results_before_the_last_reply_are_not_new() -> None:
    player = make_player(
        """
        rules:
          - {match: {tool_result: true}, answer: {text: got a result}}
          - {answer: {calls: [{name: f}]}}
        """
    )
    call = (await ask(player, user("go")))["output"][0]
    reply = await ask(player, user("go"), call, result(call, "r"))
    assert text_of(reply) == "got a result"
    later = await ask(player, user("go"), call, result(call, "r"), *reply["output"], user("again"))
    assert later["output"][0]["type"] == "function_call"


# ---------------------------------------------------------------- use counts, fallback, no match


async def test_times_once_n_and_always() -> None:
    player = make_player(
        """
        rules:
          - {name: one, times: once, answer: {text: "1"}}
          - {name: two, times: 2, answer: {text: "2"}}
          - {name: rest, answer: {text: "n"}}
        """
    )
    answers = [text_of(await ask(player, user("x"))) for _ in range(5)]
    assert answers == ["1", "2", "2", "n", "n"]
    assert (player.uses("one"), player.uses("two"), player.uses(2)) == (1, 2, 2)
    with pytest.raises(KeyError):
        player.uses("nope")


async def test_fallback_answers_what_no_rule_matches() -> None:
    player = make_player(
        """
        rules: [{match: {user: poem}, answer: {text: a poem}}]
        fallback: {text: I only write poems}
        """
    )
    assert text_of(await ask(player, user("a joke"))) == "I only write poems"
    assert player.transcript[-1].rule == "fallback"


async def test_no_match_fails_with_a_400_that_says_what_was_tried() -> None:
    player = make_player(
        """
        rules:
          - {name: save-poem, match: {user: poem}, answer: {text: x}}
          - {match: {turn: 2}, answer: {text: x}}
          - {name: once, times: once, answer: {text: first}}
          - {match: {instructions: x}, answer: {text: x}}
          - {match: {tool_result: true}, answer: {text: x}}
          - {match: {tool_result: {name: f, output: ok}}, answer: {text: x}}
        """
    )
    await ask(player, user("warm up"))
    with pytest.raises(ScriptedError) as caught:
        await ask(player, user("tell me a joke, a long one with many many words in it please now"))
    error = caught.value
    assert (error.status, error.type, error.fatal) == (400, "invalid_request_error", True)
    assert error.message == (
        "localmesh: no script rule matched this request (turn 1, latest user message "
        "'tell me a joke, a long one with many many words in it ple...'); tried: "
        "rules[0] 'save-poem' (user /poem/ did not match); "
        "rules[1] (turn is 1, not 2); "
        "rules[2] 'once' (used up: times 1); "
        "rules[3] (the request has no instructions); "
        "rules[4] (no function_call_output in the new input); "
        "rules[5] (no function_call_output with output /ok/ and name 'f' in the new input). "
        "Add a rule or a fallback to t.yaml."
    )
    entry = player.transcript[-1]
    assert (entry.rule, entry.response) == (None, None)
    assert entry.error == {"status": 400, "message": error.message}


async def test_no_match_mentions_missing_user_message_and_unused_false() -> None:
    player = make_player(
        """
        rules:
          - {match: {user: x}, answer: {text: x}}
          - {match: {tool_result: false}, answer: {calls: [{name: f}]}}
        """
    )
    with pytest.raises(ScriptedError) as caught:
        await ask(player, {"type": "function_call_output", "call_id": "c", "output": "o"})
    assert caught.value.message == (
        "localmesh: no script rule matched this request (turn 1, latest user message none); "
        "tried: rules[0] (the request has no user message); "
        "rules[1] (the new input has a function_call_output). Add a rule or a fallback to t.yaml."
    )


# ---------------------------------------------------------------- answers


async def test_calls_get_deterministic_ids_and_json_string_arguments() -> None:
    player = make_player(
        """
        rules:
          - name: my rule!
            times: once
            answer:
              calls:
                - {name: write_file, namespace: storage, arguments: {path: "ü.txt", n: 1}}
                - {name: ls, call_id: fixed}
          - answer: {calls: [{name: ls}]}
        """
    )
    response = await ask(player, user("x"))
    assert response["id"] == "resp_0001" and response["object"] == "response"
    assert (response["status"], response["created_at"], response["model"]) == ("completed", 0, "m")
    assert response["output"] == [
        {
            "type": "function_call",
            "id": "fc_0001",
            "call_id": "call_my-rule_1",
            "name": "write_file",
            "arguments": '{"path": "ü.txt", "n": 1}',
            "status": "completed",
            "namespace": "storage",
        },
        {
            "type": "function_call",
            "id": "fc_0002",
            "call_id": "fixed",
            "name": "ls",
            "arguments": "{}",
            "status": "completed",
        },
    ]
    usage = response["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > 0
    second = await ask(player, user("y"))
    assert (second["id"], second["output"][0]["call_id"]) == ("resp_0002", "call_rule1_3")


async def test_text_and_json_answers_are_assistant_messages() -> None:
    player = make_player(
        """
        rules:
          - {times: once, answer: {json: {"answer": 42, "words": ["a"]}}}
          - {answer: {text: plain}}
        """
    )
    structured = await player.respond({"input": "x"})
    assert structured["model"] == "localmesh-scripted"  # no model in the request
    assert structured["output"] == [
        {
            "type": "message",
            "id": "msg_0001",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": '{"answer": 42, "words": ["a"]}', "annotations": []}],
        }
    ]
    assert text_of(await player.respond({"input": "x"})) == "plain"


async def test_error_answers_raise_scripted_error() -> None:
    player = make_player(
        """
        rules:
          - {times: once, answer: {error: {status: 429, message: slow down, retry_after: 2}}}
          - {times: once, answer: {error: {message: boom, code: c, type: t, websocket: true}}}
          - {answer: {drop: true}}
        """
    )
    with pytest.raises(ScriptedError) as caught:
        await ask(player, user("x"))
    assert (caught.value.status, caught.value.message, caught.value.retry_after) == (429, "slow down", 2)
    assert (caught.value.type, caught.value.event, caught.value.fatal) == ("rate_limit_error", False, False)
    with pytest.raises(ScriptedError) as caught:
        await ask(player, user("x"))
    assert (caught.value.status, caught.value.type, caught.value.code, caught.value.event) == (
        500,
        "t",
        "c",
        True,
    )
    with pytest.raises(ScriptedDrop) as dropped:
        await ask(player, user("x"))
    assert dropped.value.message == "localmesh: rules[2] dropped the connection"
    entries = player.transcript
    assert [e.error for e in entries] == [
        {"status": 429, "message": "slow down", "retry_after": 2},
        {"status": 500, "message": "boom", "code": "c"},
        {"status": 503, "message": "localmesh: rules[2] dropped the connection"},
    ]
    assert [e.dropped for e in entries] == [False, False, True]


async def test_delay_waits_with_the_injected_sleep_before_answering() -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    player = make_player("rules: [{answer: {text: late, delay: 1.5}}]", sleep=fake_sleep)
    assert text_of(await ask(player, user("x"))) == "late"
    assert slept == [1.5] and player.transcript[0].delay == 1.5


# ---------------------------------------------------------------- conversations


async def test_request_mode_conversations_are_told_apart_by_the_items_they_echo() -> None:
    player = make_player(
        """
        rules:
          - {match: {tool_result: false}, answer: {calls: [{name: f}]}}
          - {answer: {text: done}}
        """
    )
    call_a = (await ask(player, user("same prompt")))["output"][0]
    call_b = (await ask(player, user("same prompt")))["output"][0]
    await ask(player, user("same prompt"), call_b, result(call_b, "b"))
    await ask(player, user("same prompt"), call_a, result(call_a, "a"))
    entries = player.transcript
    assert [(e.conversation, e.turn) for e in entries] == [
        ("conv_0001", 1),
        ("conv_0002", 1),
        ("conv_0002", 2),
        ("conv_0001", 2),
    ]
    assert [e.request["input"][-1]["output"] for e in player.transcript if e.turn == 2] == ["b", "a"]


async def test_previous_response_id_restores_the_history() -> None:
    player = make_player(
        """
        rules:
          - {match: {tool_result: false}, answer: {calls: [{name: write_file, namespace: storage}]}}
          - {match: {tool_result: {name: storage.write_file}, turn: 2}, answer: {text: done}}
        """
    )
    first = await player.respond({"type": "response.create", "input": [user("x")]})
    call = first["output"][0]
    second = await player.respond({"previous_response_id": first["id"], "input": [result(call, "ok")]})
    assert text_of(second) == "done"
    assert [(e.conversation, e.turn) for e in player.transcript] == [("conv_0001", 1), ("conv_0001", 2)]


async def test_an_unknown_previous_response_id_is_a_400() -> None:
    player = make_player("rules: [{answer: {text: x}}]")
    with pytest.raises(ScriptedError) as caught:
        await player.respond({"previous_response_id": "resp_9999", "input": []})
    assert (caught.value.status, caught.value.code) == (400, "previous_response_not_found")
    assert caught.value.message.startswith("Previous response with id 'resp_9999' not found")
    entry = player.transcript[0]
    assert (entry.conversation, entry.rule, entry.turn) == (None, None, 1)


async def test_an_explicit_conversation_name_is_used() -> None:
    player = make_player("rules: [{answer: {text: x}}]")
    await player.respond({"input": "a"}, conversation="session-1")
    await player.respond({"input": "b"}, conversation="session-1")
    assert [e.conversation for e in player.transcript] == ["session-1", "session-1"]


async def test_bad_input_is_refused() -> None:
    player = make_player("rules: [{answer: {text: x}}]")
    with pytest.raises(ScriptedError) as caught:
        await player.respond({"input": 3})
    assert caught.value.message == "localmesh: 'input' must be a string or a list of items"


# ---------------------------------------------------------------- determinism and the hub


async def run_demo(hub: LLMHub) -> str:
    player = hub.player("r")
    first = await player.respond({"model": "m", "input": [user("save a poem about AI to poem.txt")]})
    call = first["output"][0]
    await player.respond({"model": "m", "input": [user("x"), call, result(call, "the file was saved")]})
    await player.respond({"model": "m", "input": [user("what can you do?")]})
    return transcript_json(hub.transcript("r"))


async def test_same_script_and_requests_give_byte_identical_transcripts() -> None:
    first, second = await run_demo(LLMHub()), await run_demo(LLMHub())
    assert first == second
    entries = json.loads(first)
    assert [(e["conversation"], e["turn"], e["rule"]) for e in entries] == [
        ("conv_0001", 1, "save-poem"),
        ("conv_0001", 2, "poem-saved"),
        ("conv_0002", 1, "fallback"),
    ]
    assert entries[1]["response"]["output"][0]["content"][0]["text"] == "I saved a poem about AI to poem.txt."


async def test_the_clock_is_injectable() -> None:
    hub = LLMHub(clock=lambda: 1_700_000_000)
    assert (await hub.player("r").respond({"input": "hi"}))["created_at"] == 1_700_000_000


async def test_hub_scripts_per_room_reset_and_transcripts() -> None:
    hub = LLMHub()
    assert hub.default_script.source == "demo.yaml"
    hub.set_script("a", loads_script("fallback: {text: room a}"))
    assert text_of(await hub.player("a").respond({"input": "x"})) == "room a"
    assert "demo script" in text_of(await hub.player("b").respond({"input": "x"}))
    assert [e.room for e in hub.transcript("a")] == ["a"]
    assert hub.transcript("a", conversation="conv_0001") == hub.transcript("a")
    assert hub.transcript("a", conversation="conv_0002") == []
    assert hub.transcript("never-used") == []

    hub.clear_transcript("a")  # counters go on
    assert hub.transcript("a") == []
    assert (await hub.player("a").respond({"input": "x"}))["id"] == "resp_0002"
    hub.reset("a")  # counters restart, the script stays
    assert (await hub.player("a").respond({"input": "x"}))["id"] == "resp_0001"
    assert text_of(await hub.player("a").respond({"input": "x"})) == "room a"

    hub.set_default_script(loads_script("fallback: {text: new default}"))
    assert text_of(await hub.player("b").respond({"input": "x"})) == "new default"
    assert text_of(await hub.player("a").respond({"input": "x"})) == "room a"
    hub.set_script("a", None)
    assert text_of(await hub.player("a").respond({"input": "x"})) == "new default"
    assert hub.script("a") is hub.default_script


def test_the_demo_is_the_default() -> None:
    assert LLMHub().default_script.rules == load_demo_script().rules


async def test_the_demo_owns_up_to_a_failed_write() -> None:
    player = ScriptPlayer(load_demo_script())
    call = (await ask(player, user("Write a poem about AI and save it to poem.txt")))["output"][0]
    failed = result(call, "Error (code=3005): the file already exists")
    reply = await ask(player, user("x"), call, failed)
    assert text_of(reply) == "I could not save the poem to poem.txt; the write_file tool reported an error."
    assert [e.rule for e in player.transcript] == ["save-poem", "poem-not-saved"]
