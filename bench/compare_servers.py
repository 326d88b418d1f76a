"""Server CPU per queue operation of two checkouts of localmesh, side by side (run by hand).

    .venv/bin/python -m bench.compare_servers /path/to/before [/path/to/after] [--rounds N]

Starts ``localmesh serve`` from each checkout (its ``localmesh`` first on ``sys.path``), then
alternates rounds between them with the same client (this checkout's ``RoomClient``):
sequential send + receive pairs, and 64-deep pipelined bursts. Prints each server's CPU time
per operation (from /proc, all threads) and the client's rate; medians over the rounds. With
``--wake N``, each round also times N long-poll wake-ups (a receive parked at the server, a
send from another process, as in the benchmark) and prints their p50 and p99. A before/after
of a server change measured this way shares the machine's load between both.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
from pathlib import Path
from unittest import mock

from bench import procs
from bench.clients import Ours, receive_many, send_many
from bench.suite import wake_latencies

BURST = 64


def _command_for(tree: Path) -> list[str]:
    code = (f"import sys; sys.path.insert(0, {str(tree)!r}); "
            "from localmesh.cli import main; main()")
    return [sys.executable, "-c", code]


async def _round(server: procs.Localmesh, client: Ours, pairs: int, bursts: int) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    cpu, wall = server.cpu_seconds(), loop.time()
    for i in range(pairs):
        await client.send("q", {"i": i})
        assert await client.receive("q") == {"i": i}
    sequential = (server.cpu_seconds() - cpu) / (2 * pairs) * 1e6
    rate = pairs / (loop.time() - wall)
    cpu = server.cpu_seconds()
    for _ in range(bursts):
        await send_many(client, "p", [{"i": i} for i in range(BURST)])
        got = await receive_many(client, "p", BURST)
        assert [m["i"] for m in got] == list(range(BURST))
    pipelined = (server.cpu_seconds() - cpu) / (2 * BURST * bursts) * 1e6
    return {"sequential µs/op": sequential, "pairs/s": rate, "pipelined µs/op": pipelined}


async def _compare(servers: dict[str, procs.Localmesh], rounds: int, pairs: int, wake: int) -> None:
    clients = {name: await Ours.connect(server, "compare", "bench") for name, server in servers.items()}
    # The wake-up sender (bench.sender) sends in the benchmark's wake room.
    receivers = {name: await Ours.connect(server, "bench-wake", "receiver")
                 for name, server in servers.items()} if wake else {}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
    wakes: dict[str, list[float]] = {name: [] for name in servers}
    try:
        for name in servers:  # warm up
            await _round(servers[name], clients[name], 200, 2)
        for index in range(rounds):
            order = list(servers) if index % 2 == 0 else list(reversed(servers))
            for name in order:
                results[name].append(await _round(servers[name], clients[name], pairs, pairs // 100))
                if wake:
                    wakes[name] += await wake_latencies("ours", servers[name], receivers[name], wake)
    finally:
        for client in [*clients.values(), *receivers.values()]:
            await client.close()
    for name, runs in results.items():
        figures = ", ".join(f"{key} {statistics.median(r[key] for r in runs):,.1f}" for key in runs[0])
        if wakes[name]:
            cuts = statistics.quantiles(wakes[name], n=100)
            figures += f", wake p50 {cuts[49] * 1e3:.3f} ms, p99 {cuts[98] * 1e3:.3f} ms"
        print(f"{name}: {figures}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path, nargs="?", default=Path(__file__).resolve().parents[1])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--wake", type=int, default=0, help="long-poll wake-ups per round")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        servers = {}
        for name, tree in (("before", args.before), ("after", args.after)):
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            with mock.patch.object(procs, "localmesh_command", lambda tree=tree: _command_for(tree)):
                servers[f"{name} ({tree})"] = stack.enter_context(procs.run_localmesh(folder))
        asyncio.run(_compare(servers, args.rounds, args.pairs, args.wake))


if __name__ == "__main__":
    main()
