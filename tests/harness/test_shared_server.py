"""The shared server: one per pytest process (per xdist worker), a project per test, and the
room names a test uses are its own."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys

import jwt
import pytest

from localmesh.emulator.project import Project

pytest_plugins = ["pytester"]

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
"""

# Every test asks for room "r" and leaves a message and a file behind: if any state leaked
# from one test to another, the first assertions of the next test in that process would fail.
SAME_ROOM_SUITE = '''
import os

import pytest

pytestmark = pytest.mark.localmesh_strict(queued_messages=["left-behind"])


@pytest.mark.parametrize("n", range(12))
async def test_our_client(n, localmesh_room):
    room = await localmesh_room("r")
    assert await room.queues.list() == []
    assert await room.storage.list() == []
    await room.queues.send("left-behind", {"test": n})
    await room.storage.upload("same-name.txt", str(n).encode())
    assert [(q.name, q.size) for q in await room.queues.list()] == [("left-behind", 1)]
    assert (await room.storage.download("same-name.txt")).text == str(n)
    print("worker", os.environ.get("PYTEST_XDIST_WORKER", "main"), "test", n)


@pytest.mark.parametrize("n", range(4))
async def test_the_real_sdk(n, meshagent_room):
    async with meshagent_room("r") as room:
        assert await room.queues.list() == []
        await room.queues.send(name="left-behind", message={"sdk": n})
        assert [q.size for q in await room.queues.list()] == [1]
'''


def test_tests_that_use_the_same_room_name_never_meet(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_same_room=SAME_ROOM_SUITE)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=16)


@pytest.mark.slow
def test_xdist_workers_each_run_a_shared_server_and_tests_never_meet(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_same_room=SAME_ROOM_SUITE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "-v", "-s",
                                           timeout=300)
    result.assert_outcomes(passed=16)
    workers = set(re.findall(r"\[(gw\d)\].*PASSED", result.stdout.str()))
    assert workers == {"gw0", "gw1"}, result.stdout.str()


def test_the_name_a_test_asks_for_is_the_name_its_clients_see(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_names='''
import jwt


async def test_names(localmesh, localmesh_token, localmesh_room, meshagent_room):
    token = localmesh_token(room="office", name="alice")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert {"name": "room", "scope": "office"} in claims["grants"]
    assert claims["sub"] == localmesh.project_id
    assert localmesh.room_url("office").endswith("/rooms/office")
    assert localmesh.env()["MESHAGENT_API_KEY"] == localmesh.api_key
    ours = await localmesh_room("office", name="alice")
    assert ours.session.room_name == "office"
    async with meshagent_room("office", name="bob") as theirs:
        await theirs.queues.send(name="q", message={"from": "bob"})
    assert await ours.queues.receive("q", wait=False) == {"from": "bob"}
    assert [e.room for e in localmesh.history.events()] == ["office"] * len(localmesh.history.events())


async def test_own_server(localmesh_server, localmesh, localmesh_room):
    assert localmesh is localmesh_server.project
    await localmesh_room("r", name="carol")
    assert [p["attributes"]["name"] for p in localmesh_server.participants("r")] == ["carol"]
''')
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)


@pytest.mark.compat
@pytest.mark.slow
async def test_the_real_cli_reaches_the_tests_own_room(localmesh: Project) -> None:
    """The real ``meshagent`` CLI mints its tokens from the API key ``localmesh.env()`` gives:
    the key of the test's project, so its room "r" is the test's."""
    env = {**os.environ, **localmesh.env(), "MESHAGENT_ROOM": "r"}
    env.pop("MESHAGENT_TOKEN", None)
    cli = [sys.executable, "-c", "from meshagent.cli.cli import app; app()"]
    run = await asyncio.to_thread(
        subprocess.run,
        [*cli, "room", "queue", "send", "--room", "r", "--queue", "from-cli", "--json", '{"n": 1}'],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert await localmesh.queues("r") == {"from-cli": 1}
    (call,) = localmesh.history.calls("queues", "send")
    assert call.arguments["message"] == {"n": 1}
    token = jwt.decode(localmesh.mint_token(room="r", name="x"), options={"verify_signature": False})
    assert token["sub"] == localmesh.project_id
    await localmesh.reset("r")  # what it sent is expected; strict teardown need not see it
