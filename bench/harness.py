"""The harness benchmark: what one test pays for localmesh (issue 11's figures).

    python -m bench --harness                 # about a minute
    python -m bench --harness --quick         # fewer rounds, 50 trivial tests
    python -m bench --harness --update-docs   # also rewrite the harness block of docs/benchmarks.md

Measured: a fresh in-process server plus a connected client, a server stop, a room reset,
the plugin's import time (``python -X importtime``), and the wall time of a whole pytest run
of N trivial plugin tests (pytest's start-up included), on the shared server and with a
server per test. The machine is shared: the load average is printed with the results, and
the pytest runs also report their CPU time, which other processes do not inflate.
"""

from __future__ import annotations

import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

from bench.report import load_average
from localmesh.emulator.server import RoomServer
from localmesh.worker import RoomClient

TARGETS_MS = {"server_client": 50.0, "reset": 5.0, "stop": 20.0, "import": 150.0}
SUITE_TARGET_S = 15.0


@dataclass(frozen=True)
class HarnessConfig:
    rounds: int  # server start/stop and reset samples
    tests: int  # trivial tests in the pytest runs

    def describe(self) -> str:
        return f"{self.rounds} rounds per figure, pytest runs of {self.tests} trivial tests"


FULL_HARNESS = HarnessConfig(rounds=40, tests=200)
QUICK_HARNESS = HarnessConfig(rounds=10, tests=50)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _verdict(value_ms: float, target_ms: float) -> str:
    return f"target < {target_ms:g} ms: {'met' if value_ms < target_ms else 'NOT met'}"


# ---------------------------------------------------------------- in process


async def server_with_client(config: HarnessConfig, report, tmp: Path) -> None:
    """As ``localmesh_server`` does it: SQLite files in a fresh directory, no fsync."""
    starts, stops, stops_connected, durable = [], [], [], []
    async with RoomServer(data_dir=tmp / "warm"):  # imports FastAPI and uvicorn once
        pass
    for i in range(config.rounds):
        t0 = time.perf_counter()
        async with RoomServer(data_dir=tmp / f"d{i}") as server:  # as `localmesh serve` opens it
            async with RoomClient(server.url, "r", server.mint_token(room="r", name="t")):
                durable.append(time.perf_counter() - t0)
    for i in range(config.rounds):
        t0 = time.perf_counter()
        server = RoomServer(data_dir=tmp / f"s{i}", durable=False)
        await server.start()
        client = RoomClient(server.url, "r", server.mint_token(room="r", name="t"), reconnect=False)
        await client.connect()
        starts.append(time.perf_counter() - t0)
        await client.queues.send("q", {"n": i})
        if i % 2:
            await client.close()  # what the fixtures do: clients close before the server stops
            t0 = time.perf_counter()
            await server.stop()
            stops.append(time.perf_counter() - t0)
        else:
            t0 = time.perf_counter()
            await server.stop()  # a client still connected: it is told to go, then cut
            stops_connected.append(time.perf_counter() - t0)
            await client.close()
    median = statistics.median(starts)
    report.add("fresh server + connected client", _ms(median),
               f"median of {len(starts)}, as localmesh_server makes it (SQLite files, no fsync), "
               f"our RoomClient; {_verdict(median * 1000, TARGETS_MS['server_client'])}")
    report.add("the same, SQLite with fsync", _ms(statistics.median(durable)),
               f"median of {len(durable)}, as `localmesh serve` opens its store")
    median = statistics.median(stops)
    report.add("server stop", _ms(median),
               f"median of {len(stops)}, clients closed first; "
               f"{_verdict(median * 1000, TARGETS_MS['stop'])}")
    report.add("server stop, a client still connected", _ms(statistics.median(stops_connected)),
               f"median of {len(stops_connected)}")


async def room_reset(config: HarnessConfig, report, tmp: Path) -> None:
    samples = []
    async with RoomServer(data_dir=tmp / "reset") as server:
        server.llm.set_script("r", "rules: [{answer: {text: hi}}]")
        token = server.mint_token(room="r", name="t")
        async with RoomClient(server.url, "r", token) as client:
            for i in range(config.rounds):
                for n in range(10):
                    await client.queues.send(f"q{n % 3}", {"n": n})
                for n in range(5):
                    await client.storage.upload(f"dir/{n}.txt", b"x" * 1024, overwrite=True)
                server.faults.fail("queues", "receive", room="r", times=2)
                t0 = time.perf_counter()
                await server.reset("r")
                samples.append(time.perf_counter() - t0)
                if await client.queues.list():
                    raise AssertionError(f"reset {i}: the room still has queues")
    median = statistics.median(samples)
    report.add("room reset", _ms(median),
               f"median of {len(samples)}: 10 messages in 3 queues, 5 files, a fault, a script, "
               f"~40 timeline events; {_verdict(median * 1000, TARGETS_MS['reset'])}")


# ---------------------------------------------------------------- processes


def _env() -> dict[str, str]:
    """Subprocesses run as a project normally does: with bytecode caches. (Some sandboxes set
    PYTHONDONTWRITEBYTECODE, and every run then compiles every module from source.)"""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def plugin_import(report, samples: int = 7) -> None:
    """``python -X importtime``: the plugin module's own cost once pytest (and pytest-asyncio,
    which pytest loads as a plugin anyway) is imported, and the whole import from nothing."""
    own, whole = [], []
    _importtime("import localmesh.fixtures.plugin")  # warm the bytecode caches
    for _ in range(samples):
        own.append(_importtime("import pytest, pytest_asyncio; import localmesh.fixtures.plugin"))
        whole.append(_importtime("import localmesh.fixtures.plugin"))
    median = statistics.median(own)
    report.add("plugin import", _ms(median),
               f"median of {samples}, pytest already imported; "
               f"{_verdict(median * 1000, TARGETS_MS['import'])}")
    report.add("plugin import, pytest included", _ms(statistics.median(whole)),
               f"median of {samples}, from a bare interpreter")


def _importtime(code: str) -> float:
    run = subprocess.run([sys.executable, "-X", "importtime", "-c", code], env=_env(),
                         capture_output=True, text=True, timeout=120, check=True)
    for line in run.stderr.splitlines():
        fields = [f.strip() for f in line.removeprefix("import time:").split("|")]
        if len(fields) == 3 and fields[2] == "localmesh.fixtures.plugin":
            return int(fields[1]) / 1e6
    raise AssertionError("localmesh.fixtures.plugin not in the importtime output")


TRIVIAL = '''
import pytest


@pytest.mark.parametrize("n", range({tests}))
async def test_trivial(n, {fixture}localmesh_room):
    room = await localmesh_room("r")
    await room.queues.send("q", {{"n": n}})
    assert await room.queues.receive("q", wait=False) == {{"n": n}}
'''


def trivial_suite(config: HarnessConfig, report, tmp: Path, *, own_server: bool) -> None:
    project = tmp / ("own" if own_server else "shared")
    project.mkdir()
    (project / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    fixture = "localmesh_server, " if own_server else ""
    (project / "test_trivial.py").write_text(
        textwrap.dedent(TRIVIAL.format(tests=config.tests, fixture=fixture)))
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    subprocess.run([*command, "--co"], cwd=project, env=_env(), capture_output=True, timeout=600)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    run = subprocess.run(command, cwd=project, env=_env(), capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if run.returncode != 0 or f"{config.tests} passed" not in run.stdout:
        raise AssertionError(f"the trivial suite failed:\n{run.stdout[-3000:]}{run.stderr[-2000:]}")
    name = (f"{config.tests} trivial tests, a server each (localmesh_server)" if own_server
            else f"{config.tests} trivial tests, shared server")
    per_test = wall / config.tests * 1000
    detail = f"whole pytest run, start-up included; CPU {cpu:.1f} s; {per_test:.0f} ms a test"
    if not own_server and config.tests == 200:
        detail += f"; target < {SUITE_TARGET_S:g} s: {'met' if wall < SUITE_TARGET_S else 'NOT met'}"
    report.add(name, f"{wall:.1f} s", detail)


def pytest_start_up(report, tmp: Path) -> None:
    """A pytest run of one test that uses no fixture: the floor every run pays."""
    project = tmp / "empty"
    project.mkdir()
    (project / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    subprocess.run(command, cwd=project, env=_env(), capture_output=True, timeout=300, check=True)
    t0 = time.perf_counter()
    subprocess.run(command, cwd=project, env=_env(), capture_output=True, timeout=300, check=True)
    report.add("pytest run of one plain test", f"{time.perf_counter() - t0:.1f} s",
               "start-up and shut-down alone, all installed plugins loaded")


def run_harness(config: HarnessConfig, report) -> None:
    print(f"load average before: {load_average()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="localmesh-harness-") as name:
        tmp = Path(name)
        asyncio.run(server_with_client(config, report, tmp))
        asyncio.run(room_reset(config, report, tmp))
        plugin_import(report)
        pytest_start_up(report, tmp)
        trivial_suite(config, report, tmp, own_server=False)
        trivial_suite(config, report, tmp, own_server=True)
    print(f"load average after: {load_average()}", flush=True)

