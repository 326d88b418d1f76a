"""A failing test's report carries the room: the 'localmesh timeline' section (pytester)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
"""

SUITE = '''
from localmesh.fixtures.worker import run_until_drained

SCRIPT = """
rules:
  - name: write-report
    match: {user: "(?i)report", tool_result: false}
    answer:
      calls:
        - {namespace: storage, name: write_file,
           arguments: {path: out/report.md, text: "# Q3", overwrite: true}}
  - name: report-saved
    match: {tool_result: {name: write_file}}
    answer: {text: The report is saved.}
"""


async def test_in_process_script(localmesh, localmesh_worker, localmesh_room):
    worker = await localmesh_worker(queue="reports-queue", llm=SCRIPT)
    room = await localmesh_room()
    await room.queues.send("reports-queue", {"prompt": "write the report"})
    await run_until_drained(worker, localmesh)
    assert (await room.storage.download("out/report.md")).text == "# Q4"


async def test_emulator_endpoint(localmesh, localmesh_worker, localmesh_room):
    localmesh.llm.set_script("office", SCRIPT)
    worker = await localmesh_worker(room="office", queue="inbox-queue")
    room = await localmesh_room("office")
    await room.queues.send("inbox-queue", {"prompt": "the report please"})
    await run_until_drained(worker, localmesh)
    assert localmesh.history.calls("storage", "upload") == []


async def test_passes(localmesh_room):
    room = await localmesh_room()
    await room.queues.send("quiet-queue", {"n": 1})
    assert await room.queues.receive("quiet-queue", wait=False) == {"n": 1}
'''


def test_a_failing_test_shows_its_rooms_timeline_and_llm_transcript(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_report=SUITE)
    result = pytester.runpytest("-p", "no:cacheprovider", "--tb=short")
    result.assert_outcomes(failed=2, passed=1)
    result.stdout.fnmatch_lines([
        # The in-process script: the queue's traffic, the storage change, the transcript.
        "*_ test_in_process_script _*",
        "*- localmesh timeline -*",
        "*event(s) in the test's rooms, on the shared server*",
        "*test*connect*worker*as agent*",
        "*test*queue.send*tester*reports-queue #*",
        "*test*queue.deliver*worker*reports-queue #*",
        "*test*storage.write*worker*out/report.md (4 B)*",
        "*LLM transcript of scripted LLM #1 (in process):*",
        "*#1 turn 1 (python) user*write the report*: rule 'write-report' -> calls "
        "storage.write_file(path='out/report.md'*",
        "*#2 turn 2 (python) tool result*: rule 'report-saved' -> says 'The report is saved.'*",
        "*worker 'worker' on queue 'reports-queue': received 1, processed 1, failed 0*",
        # The emulator's endpoint: its transcript comes from the server, per room.
        "*_ test_emulator_endpoint _*",
        "*- localmesh timeline -*",
        "*office*queue.send*inbox-queue #*",
        "*office*llm*rule write-report: function calls (turn 1, request, openai responses, model *)*",
        "*LLM transcript of room 'office' (the emulator's endpoint):*",
        "*#1 turn 1 (request)*rule 'write-report'*",
    ])
    assert "quiet-queue" not in result.stdout.str()  # a passing test adds nothing


def test_a_strict_teardown_failure_shows_the_timeline_too(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_left='''
async def test_leaves_a_message(localmesh_room):
    room = await localmesh_room("r")
    await room.queues.send("forgotten-queue", {"n": 1})
''')
    result = pytester.runpytest("-p", "no:cacheprovider", "--tb=short")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines([
        "*ERROR at teardown of test_leaves_a_message*",
        "*messages still queued in room 'r': 'forgotten-queue' (1)*",
        "*- localmesh timeline -*",
        "*r*queue.send*tester*forgotten-queue #*",
        "*r*disconnect*tester*closed by the client*",
    ])


def test_the_report_is_bounded_by_the_ini_option(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI + "localmesh_report_lines = 3\n")
    pytester.makepyfile(test_many='''
async def test_many(localmesh_room):
    room = await localmesh_room()
    for n in range(10):
        await room.queues.send("q", {"n": n})
        await room.queues.receive("q", wait=False)
    assert False
''')
    result = pytester.runpytest("-p", "no:cacheprovider", "--tb=short")
    result.stdout.fnmatch_lines(["*41 event(s) in the test's rooms*; the last 3:"])
    section = result.stdout.str().split("localmesh timeline")[1]
    assert sum("+ " in line and "s " in line for line in section.splitlines()[:6]) == 3
