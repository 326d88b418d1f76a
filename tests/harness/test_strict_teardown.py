"""Strict teardown, seen from a fresh project (pytester): each kind of leftover fails the
test at teardown with the left items named, and passes once switched off."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
localmesh_long_poll_window = 1
{extra}
"""

TWO_RULES = '''
SCRIPT = """
rules:
  - name: answer-hello
    match: {user: hello}
    answer: {text: hi}
  - name: never-asked
    match: {user: goodbye}
    answer: {text: bye}
"""
'''

FAILING_LLM = '''
FAILING = "rules: [{name: refuse, answer: {error: {status: 400, message: the model says no}}}]"
'''

# One test module per kind of leftover: a test that leaves it, the same with the check off.
CASES = {
    "unused_rules": TWO_RULES + '''
async def test_it(scripted_llm):
    adapter = scripted_llm(SCRIPT)
    await adapter.transport.player.respond({"model": "m", "input": "hello"})


async def test_it_on_the_emulator_endpoint(localmesh, localmesh_token):
    import httpx

    localmesh.llm.set_script("r", SCRIPT)
    headers = {"Authorization": "Bearer " + localmesh_token(room="r", name="w")}
    async with httpx.AsyncClient() as http:
        reply = await http.post(localmesh.url + "/openai/v1/responses", headers=headers,
                                json={"model": "m", "input": "hello"})
    assert reply.status_code == 200
''',
    "unmatched_requests": '''
import pytest
from localmesh.scripted_llm import ScriptedError


async def test_it(scripted_llm):
    adapter = scripted_llm("rules: [{name: only-hello, match: {user: hello}, answer: {text: hi}}]")
    await adapter.transport.player.respond({"model": "m", "input": "hello"})
    with pytest.raises(ScriptedError):
        await adapter.transport.player.respond({"model": "m", "input": "something else"})
''',
    "armed_faults": '''
def test_it(localmesh):
    localmesh.faults.fail("queues", "receive", times=2, room="r")
''',
    "failed_messages": FAILING_LLM + '''
async def test_it(localmesh_worker, localmesh_room):
    worker = await localmesh_worker(llm=FAILING)
    room = await localmesh_room()
    await room.queues.send("tasks", {"prompt": "anything"})
    await worker.wait_for(lambda stats: stats.handled == 1, timeout=10)
''',
    "queued_messages": '''
async def test_it(localmesh_room):
    room = await localmesh_room("r")
    await room.queues.send("outbox", {"n": 1})
    await room.queues.send("outbox", {"n": 2})
''',
}

EXPECTED = {
    "unused_rules": ["*unused script rules (scripted LLM #1): never-asked*",
                     "*unused script rules (room 'r'): never-asked*"],
    "unmatched_requests": ["*LLM requests that matched no rule (scripted LLM #1): #2 (turn 1)*"],
    "armed_faults": ["*an armed fault: #* error on queues.receive, room 'r': error 1008, "
                     "2 time(s); fired 0*"],
    "failed_messages": ["*failed messages: worker 'worker' (queue 'tasks') failed 1; last error: "
                        "*the model says no*"],
    "queued_messages": ["*messages still queued in room 'r': 'outbox' (2)*"],
}


def _project(pytester: pytest.Pytester, source: str, ini: str = "") -> None:
    pytester.makeini(INI.format(extra=ini))
    pytester.makepyfile(test_leftovers=source)


def _all_cases(prefix: str = "") -> str:
    """One module with a test per kind of leftover, named after its check."""
    return prefix + "\n".join(
        body.replace("def test_it(", f"def test_{check}(") for check, body in CASES.items())


def test_each_leftover_fails_the_test_at_teardown_naming_it(pytester: pytest.Pytester) -> None:
    _project(pytester, _all_cases())
    result = pytester.runpytest("-p", "no:cacheprovider", "--tb=short")
    tests = len(CASES) + 1  # unused_rules has two
    result.assert_outcomes(passed=tests, errors=tests)
    expected = []
    for check, lines in EXPECTED.items():  # the errors are reported in the module's order
        names = [f"test_{check}", "test_it_on_the_emulator_endpoint"][: len(lines)]
        for name, line in zip(names, lines, strict=True):
            expected += [f"*ERROR at teardown of {name}*", "*localmesh strict teardown*", line]
    result.stdout.fnmatch_lines(expected)


def test_each_check_can_be_switched_off_by_a_marker(pytester: pytest.Pytester) -> None:
    source = "import pytest\n\n" + "\n".join(
        body.replace("async def test_it(", f"@pytest.mark.localmesh_strict({check}=False)\n"
                     f"async def test_{check}(")
            .replace("def test_it(", f"@pytest.mark.localmesh_strict({check}=False)\n"
                     f"def test_{check}(")
        for check, body in CASES.items())
    _project(pytester, source.replace(
        "async def test_it_on_the_emulator_endpoint(",
        "@pytest.mark.localmesh_strict(unused_rules=False)\nasync def test_endpoint("))
    result = pytester.runpytest("-p", "no:cacheprovider", "--tb=short")
    result.assert_outcomes(passed=len(CASES) + 1)


def test_named_leftovers_can_be_allowed(pytester: pytest.Pytester) -> None:
    source = "import pytest\n" + TWO_RULES + CASES["queued_messages"].replace(
        "async def test_it(localmesh_room)",
        '@pytest.mark.localmesh_strict(queued_messages=["outbox"])\nasync def test_queue(localmesh_room)',
    ) + '''

@pytest.mark.localmesh_strict(unused_rules=["never-asked"])
async def test_rule(scripted_llm):
    adapter = scripted_llm(SCRIPT)
    await adapter.transport.player.respond({"model": "m", "input": "hello"})
'''
    _project(pytester, source)
    pytester.runpytest("-p", "no:cacheprovider", "--tb=short").assert_outcomes(passed=2)


def test_a_catch_all_rule_after_others_may_stay_unused(pytester: pytest.Pytester) -> None:
    _project(pytester, '''
async def test_otherwise_unused(scripted_llm):
    adapter = scripted_llm([{"match": {"user": "hello"}, "answer": {"text": "hi"}},
                            {"answer": {"text": "I only say hi."}}])
    await adapter.transport.player.respond({"model": "m", "input": "hello"})


async def test_an_only_rule_is_not_a_fallback(scripted_llm):
    scripted_llm([{"answer": {"text": "I only say hi."}}])
''')
    result = pytester.runpytest("-p", "no:cacheprovider", "--tb=short")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_an_only_rule_is_not_a_fallback*",
                                 "*unused script rules (scripted LLM #*): rules[[]0[]]*"])


def test_the_ini_option_switches_checks_for_the_whole_project(pytester: pytest.Pytester) -> None:
    source = _all_cases()
    _project(pytester, source, "localmesh_strict = none")
    pytester.runpytest("-p", "no:cacheprovider", "--tb=short").assert_outcomes(passed=len(CASES) + 1)

    _project(pytester, source, "localmesh_strict = all -queued_messages -unused_rules")
    result = pytester.runpytest("-p", "no:cacheprovider", "--tb=short")
    result.assert_outcomes(passed=len(CASES) + 1, errors=3)
    assert "messages still queued" not in result.stdout.str()


def test_a_wrong_strict_setting_is_a_clear_error(pytester: pytest.Pytester) -> None:
    _project(pytester, "def test_nothing():\n    pass\n", "localmesh_strict = all -no_such_check")
    result = pytester.runpytest("-p", "no:cacheprovider", "--tb=short")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown check 'no_such_check'; the checks are unused_rules*"])

    _project(pytester, '''
import pytest

@pytest.mark.localmesh_strict(queued_messages=3)
def test_it(localmesh):
    pass
''')
    result = pytester.runpytest("-p", "no:cacheprovider", "--tb=short")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*queued_messages=...) takes True/False or a list of names, not 3*"])


def test_run_until_drained_raises_on_failed_messages_unless_allowed(pytester: pytest.Pytester) -> None:
    _project(pytester, FAILING_LLM + '''
import pytest
from localmesh.fixtures.worker import MessagesFailed, run_until_drained


async def _failing_run(localmesh_worker, localmesh_room):
    worker = await localmesh_worker(llm=FAILING)
    room = await localmesh_room()
    await room.queues.send("tasks", {"prompt": "anything"})
    return worker


async def test_raises(localmesh, localmesh_worker, localmesh_room):
    worker = await _failing_run(localmesh_worker, localmesh_room)
    with pytest.raises(MessagesFailed, match="failed 1 message.*the model says no") as failed:
        await run_until_drained(worker, localmesh)
    assert failed.value.stats.failed == 1


async def test_allowed(localmesh, localmesh_worker, localmesh_room):
    worker = await _failing_run(localmesh_worker, localmesh_room)
    stats = await run_until_drained(worker, localmesh, allow_failed=True)
    assert (stats.processed, stats.failed) == (0, 1)
''')
    pytester.runpytest("-p", "no:cacheprovider", "--tb=short").assert_outcomes(passed=2)


def test_an_unscripted_request_from_any_provider_fails_its_test(pytester: pytest.Pytester) -> None:
    # Issue 17: plain Anthropic and OpenAI clients, on the emulator's provider endpoints.
    _project(pytester, '''
import anthropic
import openai
import pytest

SCRIPT = "rules: [{name: hello, match: {user: hello}, answer: {text: hi}}]"


async def test_anthropic(localmesh, localmesh_token):
    localmesh.llm.set_script("r", SCRIPT)
    client = anthropic.AsyncAnthropic(base_url=localmesh.url + "/anthropic", max_retries=0,
                                      api_key=localmesh_token(room="r", name="w"))
    said = await client.messages.create(model="claude-sonnet-4-5", max_tokens=100,
                                        messages=[{"role": "user", "content": "hello"}])
    assert said.content[0].text == "hi"
    with pytest.raises(anthropic.APIStatusError):
        await client.messages.create(model="claude-sonnet-4-5", max_tokens=100,
                                     messages=[{"role": "user", "content": "nobody scripted this"}])


async def test_chat_completions(localmesh, localmesh_token):
    localmesh.llm.set_script("r", SCRIPT)
    client = openai.AsyncOpenAI(base_url=localmesh.url + "/openai/v1", max_retries=0,
                                api_key=localmesh_token(room="r", name="w"))
    said = await client.chat.completions.create(
        model="gpt-4.1", messages=[{"role": "user", "content": "hello"}])
    assert said.choices[0].message.content == "hi"
    with pytest.raises(openai.APIStatusError):
        await client.chat.completions.create(
            model="gpt-4.1", messages=[{"role": "user", "content": "nobody scripted this"}])
''')
    result = pytester.runpytest("-p", "no:cacheprovider", "--tb=short")
    result.assert_outcomes(passed=2, errors=2)
    result.stdout.fnmatch_lines([
        "*ERROR at teardown of test_anthropic*", "*LLM requests that matched no rule (room 'r')*",
        "*ERROR at teardown of test_chat_completions*",
        "*LLM requests that matched no rule (room 'r')*"])
