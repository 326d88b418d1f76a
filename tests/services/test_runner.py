"""One supervised service, with real processes: back-off, restarts, and nothing left behind."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
from proc import alive, descendants, until_gone

from localmesh.emulator.services.launch import LaunchPlan, Unrunnable
from localmesh.emulator.services.logs import ServiceLog
from localmesh.emulator.services.runner import GUARD, Backoff, RunnerSettings, ServiceRunner

pytestmark = pytest.mark.slow

PROMPT = 15.0


def python_plan(code: str, tmp_path: Path) -> LaunchPlan:
    return LaunchPlan(argv=[sys.executable, "-c", code], cwd=tmp_path,
                      env={"PATH": os.environ["PATH"], "PYTHONUNBUFFERED": "1"})


_started: list[ServiceRunner] = []


def make_runner(plan_factory, *, settings=None, sleep=asyncio.sleep, clock=lambda: 1000.0) -> ServiceRunner:
    runner = ServiceRunner(
        room="r", service_id="svc", name="svc", make_plan=plan_factory,
        mint_for=lambda identity, api: "token", room_url="ws://127.0.0.1:1/rooms/r",
        log=ServiceLog(), settings=settings or RunnerSettings(grace=1.0), clock=clock, sleep=sleep,
    )
    _started.append(runner)
    return runner


@pytest.fixture(autouse=True)
async def stop_runners():
    """A failing test still stops what it started."""
    yield
    while _started:
        await _started.pop().stop()


async def until_line(log: ServiceLog, text: str) -> None:
    async with asyncio.timeout(PROMPT):
        async for line in log.follow():
            if line.text == text:  # exactly: the "started" note quotes the command
                return


def test_backoff_doubles_up_to_the_cap_and_resets_after_a_stable_run():
    backoff = Backoff(RunnerSettings(first_delay=1.0, max_delay=8.0, stable_after=30.0))
    assert [backoff.next_delay(0.0) for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert backoff.next_delay(31.0) == 1.0


async def test_a_crashing_service_is_restarted_with_capped_backoff(tmp_path):
    delays: list[float] = []
    enough = asyncio.Event()

    async def fake_sleep(seconds: float) -> None:  # no real waiting: the delays are recorded
        delays.append(seconds)
        if len(delays) == 6:
            enough.set()
            await asyncio.Event().wait()  # hold here until the runner is stopped

    runner = make_runner(lambda: python_plan("import sys; print('crash'); sys.exit(3)", tmp_path),
                         settings=RunnerSettings(first_delay=1.0, max_delay=8.0), sleep=fake_sleep)
    runner.start()
    async with asyncio.timeout(PROMPT * 2):
        await enough.wait()
    assert runner.status.state == "restarting"
    assert runner.status.restart_scheduled_at == 1000.0 + 8.0
    await runner.stop()
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert runner.status.state == "stopped"
    assert runner.status.last_exit_code == 3
    assert runner.status.restart_count == 5
    exited = [e for e in runner.status.events if e.reason == "Exited"]
    assert exited and exited[-1].count == 6 and "code 3" in exited[-1].message
    assert [line.text for line in runner.log.lines()].count("crash") == 6


async def test_stop_ends_the_whole_group_and_daemonised_descendants(tmp_path):
    # A child in the group, and one that leaves it with setsid (a daemon).
    code = ("import subprocess, time\n"
            "subprocess.Popen(['sleep', '300'])\n"
            "subprocess.Popen(['setsid', 'sleep', '301'])\n"
            "print('ready', flush=True)\n"
            "time.sleep(300)\n")
    runner = make_runner(lambda: python_plan(code, tmp_path))
    runner.start()
    await until_line(runner.log, "ready")
    guard = runner.pid
    tree = descendants(guard)
    assert len(tree) >= 3  # the service and its two sleeps
    await runner.stop()
    await until_gone(tree | {guard})


async def test_a_service_that_ignores_sigterm_is_killed_after_the_grace(tmp_path):
    code = ("import signal, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "print('ready', flush=True)\n"
            "time.sleep(300)\n")
    runner = make_runner(lambda: python_plan(code, tmp_path), settings=RunnerSettings(grace=0.5))
    runner.start()
    await until_line(runner.log, "ready")
    tree = descendants(runner.pid) | {runner.pid}
    async with asyncio.timeout(PROMPT):
        await runner.stop()
    await until_gone(tree)
    assert runner.status.last_exit_code == 128 + signal.SIGKILL


async def test_restart_request_starts_a_new_process_at_once(tmp_path):
    code = "print('up', flush=True); import time; time.sleep(300)"
    runner = make_runner(lambda: python_plan(code, tmp_path))
    runner.start()
    await until_line(runner.log, "up")
    first = runner.pid
    runner.restart()
    async with asyncio.timeout(PROMPT):
        while runner.pid in (None, first):
            await asyncio.sleep(0.05)
    assert runner.status.restart_count == 1 and runner.status.state == "running"
    await runner.stop()
    assert not alive(first)


async def test_a_start_error_is_recorded_and_retried(tmp_path):
    attempts = []
    retried = asyncio.Event()

    def plan():
        attempts.append(1)
        if len(attempts) == 2:
            retried.set()
        raise Unrunnable("container.image: 'x' cannot be pulled offline")

    async def no_wait(seconds: float) -> None:
        await asyncio.sleep(0)

    runner = make_runner(plan, sleep=no_wait)
    runner.start()
    async with asyncio.timeout(PROMPT):
        await retried.wait()
    await runner.stop()
    assert runner.status.last_start_error == "container.image: 'x' cannot be pulled offline"
    assert runner.status.events[0].reason == "FailedStart"


async def test_the_guard_follows_its_parent_killed_with_sigkill(tmp_path):
    """The server's kill -9 case in small: the guard's parent dies, the service goes with it."""
    parent_code = (
        "import os, subprocess, sys\n"
        f"guard = subprocess.Popen([sys.executable, {str(GUARD)!r}, '--parent', str(os.getpid()),"
        " '--grace', '0.5', '--', 'sh', '-c', 'echo $$; exec sleep 300'])\n"
        "print(guard.pid, flush=True)\n"
        "guard.wait()\n"
    )
    parent = await asyncio.create_subprocess_exec(sys.executable, "-c", parent_code,
                                                  stdout=asyncio.subprocess.PIPE)
    try:
        async with asyncio.timeout(PROMPT):
            pids = {int(await parent.stdout.readline()), int(await parent.stdout.readline())}
        assert all(alive(pid) for pid in pids)
        parent.kill()
        await parent.wait()
        await until_gone(pids)
        async with asyncio.timeout(PROMPT):
            await parent.stdout.read()  # the guard and the service held the pipe: EOF once gone
    finally:
        if parent.returncode is None:
            parent.kill()
            await parent.wait()


async def test_output_is_kept_line_by_line_and_an_overlong_line_is_cut(tmp_path):
    code = "print('x' * 300_000); print('after', flush=True); import time; time.sleep(300)"
    runner = make_runner(lambda: python_plan(code, tmp_path))
    runner.start()
    await until_line(runner.log, "after")
    texts = [line.text for line in runner.log.lines()]
    assert any("was cut" in text for text in texts)
    assert all(len(text) <= 4100 for text in texts)  # and each kept line is bounded
