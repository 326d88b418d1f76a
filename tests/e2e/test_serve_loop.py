"""``localmesh serve`` runs on uvloop when it is installed, and on asyncio's loop when told to.

The startup line names the loop the process really runs (read from the running loop, not from
the option), and the queue's promises hold on either: a pipelined burst comes back whole and
in order, a long poll is woken by another connection's send.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import localmesh_serve
import pytest
from localmesh_serve import Served, run, serve
from test_restart import ROOM, _token

from localmesh.worker import RoomClient

pytestmark = [pytest.mark.slow]

BOUND = 30.0
BURST = 64


def _loop_of(served: Served) -> str:
    line = next(line for line in served.output().splitlines() if "serving on" in line)
    return line.rpartition("event loop: ")[2].rstrip(")")


async def _queue_promises_hold(served: Served) -> None:
    key = served.exports["MESHAGENT_API_KEY"]
    async with (RoomClient(served.url, ROOM, _token(key, "a"), reconnect=False) as a,
                RoomClient(served.url, ROOM, _token(key, "b"), reconnect=False) as b):
        async with asyncio.timeout(BOUND):
            await asyncio.gather(*(a.queues.send("burst", {"n": n}) for n in range(BURST)))
            got = [await a.queues.receive("burst", wait=False) for _ in range(BURST)]
            assert got == [{"n": n} for n in range(BURST)]
            assert await a.queues.receive("burst", wait=False) is None  # each one once
            waiting = asyncio.create_task(b.queues.receive("wake"))
            # Parked once its queue exists (the receive creates it): then the send wakes it.
            while not any(queue.name == "wake" for queue in await a.queues.list()):
                assert not waiting.done()
            await a.queues.send("wake", {"hello": "b"})
            assert await waiting == {"hello": "b"}


@pytest.mark.parametrize(("args", "env", "expected"), [
    pytest.param((), {}, "uvloop", id="default"),
    pytest.param(("--loop", "asyncio"), {}, "asyncio", id="--loop asyncio"),
    pytest.param((), {"LOCALMESH_LOOP": "asyncio"}, "asyncio", id="LOCALMESH_LOOP=asyncio"),
])
async def test_serve_runs_the_loop_asked_for(tmp_path: Path, args: tuple[str, ...],
                                             env: dict[str, str], expected: str) -> None:
    environ = {k: v for k, v in os.environ.items() if k != "LOCALMESH_LOOP"}
    async with serve(*args, data_dir=None, log=tmp_path / "serve.log",
                     env={**environ, "HOME": str(tmp_path), **env}) as served:
        assert _loop_of(served) == expected, served.output()
        await _queue_promises_hold(served)


# The command, with uvloop made unimportable (as where it is not installed).
WITHOUT_UVLOOP = [sys.executable, "-c",
                  "import sys; sys.modules['uvloop'] = None; sys.argv[0] = 'localmesh'\n"
                  "from localmesh.cli import main; main()"]


async def test_without_uvloop_auto_falls_back_and_uvloop_is_a_clear_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    environ = {k: v for k, v in os.environ.items() if k != "LOCALMESH_LOOP"}
    code, output = await run(environ, *WITHOUT_UVLOOP, "serve", "--in-memory", "--loop", "uvloop")
    assert code == 2, output
    assert "uvloop is not installed" in output and "--loop asyncio" in output, output

    monkeypatch.setattr(localmesh_serve, "LOCALMESH_COMMAND", WITHOUT_UVLOOP)
    async with serve(data_dir=None, log=tmp_path / "serve.log",
                     env={**environ, "HOME": str(tmp_path)}) as served:
        assert _loop_of(served) == "asyncio", served.output()
