"""Python calls per queue operation in the SERVER (not a test; run by hand).

    .venv/bin/python -m bench.profile_server [sequential|pipelined] [pairs]
    REPO=/path/to/another/checkout .venv/bin/python -m bench.profile_server

Starts ``localmesh serve`` (from ``REPO``'s checkout, this one by default) with cProfile
installed but off, warms it up with our client, then switches the profiler on with SIGUSR1
for ``pairs`` send + receive pairs (one by one, or in 64-deep pipelined bursts) and off with
SIGUSR2, which writes the stats. Prints the calls per operation (all of them, and those of
Python functions) and the functions with the most time of their own. The profiler counts
CPU time (``time.process_time``) and inflates what it measures; read the counts, and the
shares only as a rough guide (``perf`` is the one to trust for where the CPU goes).
"""

from __future__ import annotations

import asyncio
import os
import pstats
import signal
import sys
import tempfile
from pathlib import Path
from unittest import mock

from bench import procs
from bench.clients import Ours, receive_many, send_many

REPO = Path(os.environ.get("REPO", Path(__file__).resolve().parents[1]))
BURST = 64
TOP = 25

# Runs in the server process: cProfile on SIGUSR1, off and written on SIGUSR2.
_PROFILED_SERVER = """
import cProfile, signal, sys, time
sys.path.insert(0, {repo!r})
profile = cProfile.Profile(time.process_time)
signal.signal(signal.SIGUSR1, lambda *_: profile.enable())
def _stop(*_):
    profile.disable()
    profile.dump_stats({out!r})
signal.signal(signal.SIGUSR2, _stop)
from localmesh.cli import main
main()
"""


async def _load(client: Ours, mode: str, pairs: int) -> int:
    """Run ``pairs`` pairs; the operations done (a pair is two)."""
    if mode == "sequential":
        for i in range(pairs):
            await client.send("q", {"i": i, "pad": "x" * 100})
            await client.receive("q")
        return 2 * pairs
    bursts = max(1, pairs // BURST)
    for _ in range(bursts):
        await send_many(client, "p", [{"i": i, "pad": "x" * 100} for i in range(BURST)])
        await receive_many(client, "p", BURST)
    return 2 * BURST * bursts


async def _profile(server: procs.Localmesh, mode: str, pairs: int, out: Path) -> int:
    client = await Ours.connect(server, "profile", "profile")
    try:
        await _load(client, mode, 300)  # warm up
        os.kill(server.pid, signal.SIGUSR1)
        await client.receive("q", wait=False)  # a round trip: the signal has been handled
        operations = await _load(client, mode, pairs)
        os.kill(server.pid, signal.SIGUSR2)
        for _ in range(200):  # bounded: up to 10 s for the stats file
            if out.exists() and out.stat().st_size:
                break
            await asyncio.sleep(0.05)
        return operations
    finally:
        await client.close()


def _report(out: Path, operations: int) -> None:
    stats = pstats.Stats(str(out))
    entries = stats.stats  # type: ignore[attr-defined]
    python_calls = sum(v[1] for k, v in entries.items() if k[0] != "~")
    print(f"server of {REPO}: {stats.total_calls / operations:.1f} calls per op,"  # type: ignore[attr-defined]
          f" {python_calls / operations:.1f} of them Python functions")
    print(f"{'calls/op':>8} {'own µs/op':>9}  function (profiled time: inflated)")
    rows = sorted(entries.items(), key=lambda item: -item[1][2])[:TOP]
    for (file, line, name), (_, calls, own, _, _) in rows:
        where = name if file == "~" else f"{Path(file).name}:{line} {name}"
        print(f"{calls / operations:8.1f} {own / operations * 1e6:9.1f}  {where}")


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "sequential"
    pairs = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    if mode not in ("sequential", "pipelined"):
        raise SystemExit("mode: sequential or pipelined")
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "server.prof"
        command = [sys.executable, "-c", _PROFILED_SERVER.format(repo=str(REPO), out=str(out))]
        with mock.patch.object(procs, "localmesh_command", lambda: command), \
                procs.run_localmesh(Path(folder)) as server:
            operations = asyncio.run(_profile(server, mode, pairs, out))
        _report(out, operations)


if __name__ == "__main__":
    main()
