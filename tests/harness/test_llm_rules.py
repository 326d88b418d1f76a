"""Rules in Python and request checks with the harness: a Python rule drives our Worker and the
real SDK Worker to write a file; a check that does not hold fails the test that made the
request, with the difference, even though the Worker swallowed the error (pytester)."""

from __future__ import annotations

import re

import pytest

from localmesh.fixtures.worker import run_until_drained
from localmesh.scripted_llm import Call, LLMRequest, expect

pytest_plugins = ["pytester"]


def take_notes(request: LLMRequest):
    """Write what follows "note:" in upper case to notes/today.txt, then say so."""
    if request.tool_results:
        return f"Noted ({request.tool_results[0].output})."
    found = re.search(r"note: ([\w ]+)", request.user_text or "")
    if found is None:
        return None  # not a note: let the next rules answer
    return Call("write_file", {"path": "notes/today.txt", "text": found[1].upper(), "overwrite": True})


async def test_a_python_rule_drives_our_worker_to_write_a_file(
    localmesh_server, localmesh_worker, localmesh_room
) -> None:
    script = [expect(tools=["write_file"]), take_notes, {"answer": {"text": "I only take notes."}}]
    worker = await localmesh_worker(llm=script)
    room = await localmesh_room()
    await room.queues.send("tasks", {"prompt": "note: buy milk"})
    await room.queues.send("tasks", {"prompt": "sing"})
    stats = await run_until_drained(worker, localmesh_server)
    assert (stats.processed, stats.failed) == (2, 0)
    assert (await room.storage.download("notes/today.txt")).text == "BUY MILK"
    transcript = worker.llm_adapter.transport.player.transcript
    assert [entry.rule for entry in transcript] == ["take_notes", "take_notes", "rules[2]"]


@pytest.mark.compat
async def test_a_python_rule_drives_the_real_sdk_worker(
    localmesh_server, meshagent_worker, localmesh_room
) -> None:
    # The room's endpoint plays it: the emulator runs in this process, so a function can answer.
    worker = await meshagent_worker.start(queue="jobs", llm=[expect(tools=["write_file"]), take_notes])
    room = await localmesh_room("test", name="sender")
    await room.queues.send("jobs", {"prompt": "note: call the bank"})
    await meshagent_worker.run_until_drained(worker)
    assert (await room.storage.download("notes/today.txt")).text == "CALL THE BANK"
    rules = [entry.rule for entry in localmesh_server.llm.transcript("test")]
    assert rules == ["take_notes", "take_notes"]


# ---------------------------------------------------------------- failing checks fail the test

INI = "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"

SUITE = '''
import pytest

from localmesh.fixtures.worker import run_until_drained
from localmesh.scripted_llm import expect


async def test_our_worker_is_offered_the_wrong_tools(localmesh_server, localmesh_worker, localmesh_room):
    script = [expect(tools=["storage.delete_file"], instructions="Always be polite"),
              {"answer": {"text": "done"}}]
    worker = await localmesh_worker(llm=script)
    room = await localmesh_room()
    await room.queues.send("tasks", {"prompt": "hello"})
    stats = await run_until_drained(worker, localmesh_server)
    assert stats.processed + stats.failed == 1  # the Worker took the 400 and carried on


def wants_exactly_write_file(request):
    assert request.tool_names == ("storage.write_file",)
    return "ok"


async def test_a_plain_assert_in_a_python_rule(meshagent_worker, localmesh_room):
    worker = await meshagent_worker.start(queue="jobs", llm=wants_exactly_write_file)
    room = await localmesh_room("test", name="sender")
    await room.queues.send("jobs", {"prompt": "hi"})
    await meshagent_worker.run_until_drained(worker, allow_failures=True)


async def test_the_script_failure_joins_the_report_of_a_test_that_failed_anyway(
        localmesh_worker, localmesh_room):
    worker = await localmesh_worker(llm=[expect(model="gpt-5"), {"answer": {"text": "x"}}])
    room = await localmesh_room()
    await room.queues.send("tasks", {"prompt": "hello"})
    await run_until_drained(worker, room, allow_failed=True)  # the test checks for itself
    assert worker.stats.failed == 0, "the message failed"


@pytest.fixture
def asks_late(scripted_llm):
    adapter = scripted_llm([expect(model="gpt-5"), {"answer": {"text": "x"}}])
    yield adapter
    adapter.transport.player.play({"model": "late-model", "input": "one more"})  # at teardown


def test_a_check_broken_during_teardown_fails_the_teardown(asks_late):
    pass


async def test_a_check_that_holds_passes(localmesh_worker, localmesh_room):
    worker = await localmesh_worker(llm=[expect(tools=["write_file"]), {"answer": {"text": "x"}}])
    room = await localmesh_room()
    await room.queues.send("tasks", {"prompt": "hello"})
    assert (await run_until_drained(worker, room)).processed == 1
'''


@pytest.mark.compat
def test_a_check_that_does_not_hold_fails_its_test_with_the_difference(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_checks=SUITE)
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly", "--tb=short")
    result.assert_outcomes(passed=2, failed=3, errors=1)
    # Each failing test names itself and shows its own difference.
    result.stdout.fnmatch_lines([
        "*_ test_our_worker_is_offered_the_wrong_tools _*",
        "E   localmesh.scripted_llm.errors.ScriptFailed: an LLM request did not meet the script's checks:",
        "E   request #1 in room 'test', turn 1: the request did not meet the expectations of rule*",
        "E     tools: 1 expected tool was not offered (- missing)",
        "E       - storage.delete_file",
        "E       offered: *storage.write_file*",
        "E     instructions: expected to contain 'Always be polite'*",
    ])
    # pytest's own diff of the assert inside the Python rule, from the server's endpoint.
    result.stdout.fnmatch_lines([
        "*_ test_a_plain_assert_in_a_python_rule _*",
        "E   request #1 in room 'test', turn 1: rule 'wants_exactly_write_file' failed an assertion on*",
        "E     assert * == ('storage.write_file',)",
    ])
    # A test that failed for its own reason carries the script's failure as a report section.
    result.stdout.fnmatch_lines([
        "*_ test_the_script_failure_joins_the_report_of_a_test_that_failed_anyway _*",
        "E   AssertionError: the message failed",
        "*- Captured localmesh LLM script call -*",
        "*model: expected 'gpt-5', the request asked for *",
    ])
    # Broken while the fixtures were torn down: the teardown fails.
    result.stdout.fnmatch_lines([
        "*ERROR at teardown of test_a_check_broken_during_teardown_fails_the_teardown*",
        "*model: expected 'gpt-5', the request asked for 'late-model'",
    ])
