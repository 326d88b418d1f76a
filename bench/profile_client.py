"""Python calls and CPU per operation of OUR room client (not a test; run by hand).

    .venv/bin/python -m bench.profile_client [pairs]
    REPO=/path/to/another/checkout .venv/bin/python -m bench.profile_client

Sequential ``queues.send`` + ``queues.receive`` pairs, then 64-deep pipelined bursts, from
``RoomClient`` against ``localmesh serve`` in another process (the bench's own helpers start
it). An operation is a send or a receive: a pair is two. Calls are counted by cProfile; CPU is
this process's (user + system, ``time.process_time``), measured without the profiler.
``REPO`` measures another checkout's client (its ``localmesh`` goes first on ``sys.path``).
"""

from __future__ import annotations

import asyncio
import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = os.environ.get("REPO", str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, REPO)

import localmesh  # noqa: E402
from bench.clients import Ours, receive_many, send_many  # noqa: E402
from bench.procs import run_localmesh  # noqa: E402

assert localmesh.__file__ is not None and localmesh.__file__.startswith(REPO), localmesh.__file__
PAIRS = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
BURST, BURSTS = 64, 10


async def sequential(client: Ours, pairs: int) -> None:
    for i in range(pairs):
        await client.send("q", {"i": i})
        await client.receive("q")


async def pipelined(client: Ours) -> None:
    for _ in range(BURSTS):
        await send_many(client, "p", [{"i": i} for i in range(BURST)])
        got = await receive_many(client, "p", BURST)
        assert len(got) == BURST and None not in got


async def measure(client: Ours) -> None:
    await sequential(client, 300)  # warm up
    profile = cProfile.Profile()
    profile.enable()
    await sequential(client, PAIRS)
    profile.disable()
    calls_sequential = pstats.Stats(profile).total_calls / (2 * PAIRS)
    profile = cProfile.Profile()
    profile.enable()
    await pipelined(client)
    profile.disable()
    calls_pipelined = pstats.Stats(profile).total_calls / (2 * BURST * BURSTS)
    cpu_sequential, cpu_pipelined, rate = [], [], []
    for _ in range(5):
        cpu, wall = time.process_time(), time.perf_counter()
        await sequential(client, PAIRS // 2)
        cpu_sequential.append((time.process_time() - cpu) / PAIRS * 1e6)
        rate.append(PAIRS / 2 / (time.perf_counter() - wall))
        cpu = time.process_time()
        await pipelined(client)
        cpu_pipelined.append((time.process_time() - cpu) / (2 * BURST * BURSTS) * 1e6)
    print(f"client of {REPO}")
    print(f"sequential: {calls_sequential:.1f} calls/op, CPU/op min {min(cpu_sequential):.1f} µs"
          f" (median {statistics.median(cpu_sequential):.1f}), {statistics.median(rate):.0f} pairs/s")
    print(f"pipelined {BURST}: {calls_pipelined:.1f} calls/op, CPU/op min "
          f"{min(cpu_pipelined):.1f} µs (median {statistics.median(cpu_pipelined):.1f})")


async def main(server) -> None:
    client = await Ours.connect(server, "profile", "profile")
    try:
        await measure(client)
    finally:
        await client.close()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder, run_localmesh(Path(folder)) as server:
        asyncio.run(main(server))
