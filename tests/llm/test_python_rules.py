"""Rules in Python and request checks, in the engine: what a function receives and may return,
how scripts are composed, what ``expect`` checks and the diff it gives, and how failures are
kept, answered and raised."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from localmesh.scripted_llm import (
    Answer,
    Call,
    ErrorAnswer,
    LLMRequest,
    OfferedTool,
    ScriptedError,
    ScriptError,
    ScriptFailed,
    ScriptPlayer,
    coerce_script,
    compose,
    expect,
    loads_script,
    rule,
)
from localmesh.scripted_llm.providers import ANTHROPIC_MESSAGES, CHAT_COMPLETIONS

STORAGE_TOOLS = [{"type": "namespace", "name": "storage", "description": "files", "tools": [
    {"type": "function", "name": "read_file", "parameters": {"type": "object"}},
    {"type": "function", "name": "write_file", "description": "write a file"},
]}]


def body(text: str = "hello", **fields: Any) -> dict[str, Any]:
    return {"model": "m", "input": [{"role": "user", "content": text}], **fields}


def text_of(response: dict[str, Any]) -> str:
    return response["output"][-1]["content"][0]["text"]


# ---------------------------------------------------------------- what a rule receives


async def test_a_rule_receives_the_request_as_a_typed_view() -> None:
    seen: list[LLMRequest] = []

    def look(request: LLMRequest) -> str:
        seen.append(request)
        return "ok"

    player = ScriptPlayer(compose(look), room="lab")
    sent = body("save a note", instructions="Be brief.", tools=STORAGE_TOOLS)
    await player.respond(sent)
    request = seen[0]
    assert (request.model, request.instructions, request.user_text, request.turn) == (
        "m", "Be brief.", "save a note", 1)
    assert (request.provider, request.api, request.room, request.conversation) == (
        "openai", "responses", "lab", "conv_0001")
    assert request.tool_names == ("storage.read_file", "storage.write_file")
    assert request.tool("write_file") == OfferedTool(
        name="write_file", namespace="storage", description="write a file")
    assert request.offers("storage.read_file") and not request.offers("files.read_file")
    assert request.body == sent and request.body is not sent  # a copy: the client's is untouched
    assert request.input == ({"role": "user", "content": "save a note"},)


async def test_tool_results_reach_the_rule_with_the_call_they_answer() -> None:
    def save(request: LLMRequest):
        if request.tool_results:
            (result,) = request.tool_results
            return f"{result.namespace}.{result.name} said {result.output}"
        return Call("write_file", {"path": "a.txt"}, namespace="storage", call_id="c1")

    player = ScriptPlayer(compose(save))
    first = await player.respond(body())
    call = first["output"][0]
    assert (call["name"], call["call_id"], call["namespace"]) == ("write_file", "c1", "storage")
    follow_up = body()
    follow_up["input"] += [call, {"type": "function_call_output", "call_id": "c1", "output": "saved"}]
    assert text_of(await player.respond(follow_up)) == "storage.write_file said saved"


@pytest.mark.parametrize(("wire", "sent", "expected"), [
    (CHAT_COMPLETIONS, {"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": [
        {"type": "function", "function": {"name": "write_file", "parameters": {"type": "object"}}}]},
     (OfferedTool("write_file", parameters={"type": "object"}),)),
    (ANTHROPIC_MESSAGES, {
        "model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"name": "write_file", "description": "w", "input_schema": {"type": "object"}},
                  {"type": "web_search_20250305", "name": "web_search"}]},
     (OfferedTool("write_file", description="w", parameters={"type": "object"}),
      OfferedTool("web_search", type="web_search_20250305"))),
])
async def test_every_provider_says_which_tools_it_offers(wire, sent, expected) -> None:
    seen: list[LLMRequest] = []
    player = ScriptPlayer(compose(lambda request: seen.append(request) or "ok"))
    await player.respond(sent, wire=wire)
    assert seen[0].tools == expected
    assert seen[0].api == wire.api and seen[0].body == sent


# ---------------------------------------------------------------- what a rule returns


@pytest.mark.parametrize(("returned", "check"), [
    ("plain text", lambda out: out[0]["content"][0]["text"] == "plain text"),
    (Call("write_file", {"path": "x"}), lambda out: out[0]["name"] == "write_file"),
    ([Call("a"), Call("b")], lambda out: [o["name"] for o in out] == ["a", "b"]),
    (Answer(json_text='{"ok": true}'), lambda out: out[0]["content"][0]["text"] == '{"ok": true}'),
    ({"calls": [{"name": "c", "arguments": {"n": 1}}]}, lambda out: out[0]["arguments"] == '{"n": 1}'),
])
async def test_what_a_rule_may_return(returned, check) -> None:
    player = ScriptPlayer(compose(lambda request: returned))
    response = await player.respond(body())
    assert check(response["output"])
    assert player.failures == []


async def test_an_error_answer_from_a_rule() -> None:
    player = ScriptPlayer(compose(lambda r: Answer(error=ErrorAnswer("slow down", status=429))))
    with pytest.raises(ScriptedError) as caught:
        await player.respond(body())
    assert (caught.value.status, caught.value.message) == (429, "slow down")
    assert player.failures == []  # an error the script meant is not a failure


async def test_none_passes_to_the_next_rules_and_counts_no_use() -> None:
    def only_on_weather(request: LLMRequest):
        return "sunny" if "weather" in (request.user_text or "") else None

    player = ScriptPlayer(compose(only_on_weather, fallback={"text": "no idea"}))
    assert text_of(await player.respond(body("the weather?"))) == "sunny"
    assert text_of(await player.respond(body("a joke?"))) == "no idea"
    assert player.uses("only_on_weather") == 1
    assert [e.rule for e in player.transcript] == ["only_on_weather", "fallback"]


async def test_match_and_times_apply_to_python_rules_too() -> None:
    script = compose(
        rule(lambda r: "first", name="once", times="once", match={"user": "hi"}),
        rule(lambda r: "later", name="later"),
    )
    player = ScriptPlayer(script)
    assert [text_of(await player.respond(body(t))) for t in ("bye", "hi", "hi")] == [
        "later", "first", "later"]


async def test_no_rule_matched_names_the_function_that_passed() -> None:
    def never(request: LLMRequest):
        return None

    player = ScriptPlayer(compose(never))
    with pytest.raises(ScriptedError, match=r"rules\[0\] 'never' \(its function returned None\)"):
        await player.respond(body())


# ---------------------------------------------------------------- composing scripts


def test_compose_mixes_functions_specs_mappings_and_yaml_scripts() -> None:
    def helper(request):
        return "h"

    yaml_script = loads_script("rules: [{name: yaml, answer: {text: y}}]\nfallback: {text: f}", "base.yaml")
    script = compose(expect(model="m"), helper, {"name": "mapped", "answer": {"text": "m"}}, yaml_script)
    assert [r.label for r in script.rules] == ["rules[0]", "helper", "mapped", "yaml"]
    assert [r.index for r in script.rules] == [0, 1, 2, 3]
    assert script.fallback == Answer(text="f")  # the YAML script's, as none was given
    assert compose(yaml_script, fallback={"text": "mine"}).fallback == Answer(text="mine")


def test_a_function_name_never_clashes() -> None:
    def same(request):
        return "x"

    mapped = {"name": "taken", "answer": {"text": "t"}}
    script = compose(same, same, rule(lambda r: "y", name="same2"), mapped)
    assert [r.name for r in script.rules] == ["same", None, "same2", "taken"]
    with pytest.raises(ScriptError, match="duplicate rule name 'a'"):
        compose(rule(same, name="a"), rule(same, name="a"))


@pytest.mark.parametrize(("items", "message"), [
    ((rule(lambda r: "x", answer={"text": "y"}),),
     "<python>: rules[0]: give an answer or a Python function, not both"),
    (({"match": {"usr": "x"}, "answer": {"text": "y"}},), "<python>: rules[0].match: unknown key 'usr'"),
    ((), "<python>: top level: the script needs at least one rule or a fallback"),
])
def test_composed_scripts_are_validated_like_yaml(items, message) -> None:
    with pytest.raises(ScriptError) as caught:
        compose(*items)
    assert str(caught.value).startswith(message)


def test_bad_items_and_empty_expectations_are_refused() -> None:
    with pytest.raises(TypeError, match="a script item must be a function"):
        compose(42)
    with pytest.raises(TypeError, match="expect\\(\\) needs at least one of"):
        expect()


def test_coerce_script_takes_functions_and_lists() -> None:
    def f(request):
        return "x"

    assert [r.name for r in coerce_script(f).rules] == ["f"]
    assert len(coerce_script([f, {"answer": {"text": "y"}}]).rules) == 2
    assert coerce_script("fallback: {text: t}").fallback == Answer(text="t")  # YAML still


# ---------------------------------------------------------------- expect: checking requests


EXPECTING = """
rules:
  - expect: {tools: [write_file], instructions: notes}
  - name: answer
    expect: {model: m}
    answer: {text: fine}
"""


async def test_a_check_only_rule_lets_a_good_request_through() -> None:
    player = ScriptPlayer(loads_script(EXPECTING, "e.yaml"))
    reply = await player.respond(body(instructions="Take notes.", tools=STORAGE_TOOLS))
    assert text_of(reply) == "fine"
    assert player.uses(0) == 1 and player.uses("answer") == 1
    player.check()  # nothing to raise


async def test_a_request_that_breaks_a_check_gets_a_400_and_is_kept() -> None:
    player = ScriptPlayer(loads_script(EXPECTING, "e.yaml"), room="lab")
    tools = [{"type": "namespace", "name": "storage", "tools": [{"type": "function", "name": "read_file"}]}]
    with pytest.raises(ScriptedError) as caught:
        await player.respond(body(instructions="Take no prisoners.", tools=tools))
    error = caught.value
    assert (error.status, error.fatal) == (400, True)  # clients do not retry it
    assert error.message.startswith("localmesh: the request did not meet the expectations of rule 'rules[0]'")
    assert player.transcript[0].rule == "rules[0]" and player.transcript[0].error["status"] == 400
    (failure,) = player.failures
    assert (failure.room, failure.rule, failure.entry, failure.turn, failure.kind) == (
        "lab", "rules[0]", 1, 1, "expect")
    assert failure.message == textwrap.dedent("""\
        tools: 1 expected tool was not offered (- missing)
          - write_file
          offered: storage.read_file
        instructions: expected to contain 'notes'
          instructions: 'Take no prisoners.'""")
    with pytest.raises(ScriptFailed) as raised:
        player.check()
    assert str(raised.value) == (
        "an LLM request did not meet the script's checks:\n\n"
        "request #1 in room 'lab', turn 1: the request did not meet the expectations of rule 'rules[0]':\n"
        + textwrap.indent(failure.message, "  "))
    assert player.failures == []  # raised once: handled
    player.check()


async def test_the_exact_tools_diff_and_the_closest_text() -> None:
    script = compose(expect(
        tools_exactly=["storage.read_file", "storage.delete_file"], user="answer in French"))
    player = ScriptPlayer(script)
    with pytest.raises(ScriptedError):
        await player.respond(body("Please answer in English.", tools=STORAGE_TOOLS))
    assert player.failures[0].message == textwrap.dedent("""\
        tools: the offered tools are not the expected ones (- expected, not offered; + offered, not expected)
            storage.read_file
          - storage.delete_file
          + storage.write_file
        user message: expected to contain 'answer in French'
          user message: 'Please answer in English.'
          closest part (- expected, + found):
          - answer in French
          + answer in English.""")


async def test_no_tools_and_no_instructions_are_said_plainly() -> None:
    player = ScriptPlayer(compose(expect(tools=["write_file"], instructions="x", model="gpt-5")))
    with pytest.raises(ScriptedError):
        await player.respond(body())
    assert player.failures[0].message == textwrap.dedent("""\
        model: expected 'gpt-5', the request asked for 'm'
        tools: 1 expected tool was not offered (- missing)
          - write_file
          offered: no tools
        instructions: expected to contain 'x', but the request has none""")


def test_expect_is_validated() -> None:
    with pytest.raises(ScriptError, match=r"rules\[0\]\.expect: must not be empty"):
        loads_script("rules: [{expect: {}}]", "t.yaml")
    with pytest.raises(ScriptError, match=r"rules\[0\]\.expect: unknown key 'tool'"):
        loads_script("rules: [{expect: {tool: [a]}, answer: {text: t}}]", "t.yaml")
    with pytest.raises(ScriptError, match=r"rules\[0\]\.expect\.tools: expected a list"):
        loads_script("rules: [{expect: {tools: write_file}}]", "t.yaml")


# ---------------------------------------------------------------- a rule that fails


async def test_an_assertion_in_a_rule_is_a_failure_with_its_message() -> None:
    def strict(request: LLMRequest):
        assert request.offers("write_file"), f"offered only {request.tool_names}"
        return "ok"

    player = ScriptPlayer(compose(strict))
    with pytest.raises(ScriptedError, match="rule 'strict' failed an assertion on the request"):
        await player.respond(body())
    (failure,) = player.failures
    assert failure.kind == "assert"
    # The assertion's own message; pytest's rewriting adds its explanation after it.
    assert failure.message.startswith("offered only ()")


async def test_a_rule_that_raises_or_returns_nonsense_is_a_failure() -> None:
    def broken(request):
        return {}["missing"]

    async def coroutine(request):
        return "x"

    player = ScriptPlayer(compose(broken, coroutine, rule(lambda r: 42, name="answer")))
    for _ in range(3):
        with pytest.raises(ScriptedError):
            await player.respond(body())
    kinds = [(f.rule, f.kind) for f in player.failures]
    assert kinds == [("broken", "raised")] * 3  # the first rule fails every time
    assert player.failures[0].message.startswith("KeyError: 'missing'\n  at ")
    assert "in broken" in player.failures[0].message

    player = ScriptPlayer(compose(coroutine))
    with pytest.raises(ScriptedError):
        await player.respond(body())
    assert player.failures[0].message == (
        "returned an awaitable: Python rules are plain functions, not async")
    player = ScriptPlayer(compose(rule(lambda r: 42, name="answer")))
    with pytest.raises(ScriptedError):
        await player.respond(body())
    assert player.failures[0].message.startswith("returned 42; return None (pass), a str (text)")


async def test_a_hub_keeps_every_rooms_failures_across_resets() -> None:
    from localmesh.emulator.llm import LLMHub

    hub = LLMHub(compose(expect(model="right")))
    for room in ("a", "b"):
        with pytest.raises(ScriptedError):
            await hub.player(room).respond(body())
    hub.reset("a")
    assert [f.room for f in hub.failures] == ["a", "b"]
    with pytest.raises(ScriptFailed, match="2 LLM requests did not meet the script's checks"):
        hub.check()
    assert hub.failures == []


async def test_kept_failures_are_bounded_newest_first() -> None:
    from localmesh.scripted_llm.player import MemoryBounds

    player = ScriptPlayer(compose(expect(model="right")), bounds=MemoryBounds(failures=2))
    for _ in range(3):
        with pytest.raises(ScriptedError):
            await player.respond(body())
    assert [f.entry for f in player.failures] == [2, 3]
