"""The localmesh benchmark, side by side with Redis (issue 13).

``localmesh serve`` and ``redis-server`` each run in a process of their own, durable
against a process crash (SQLite WAL + synchronous=NORMAL; Redis AOF + appendfsync no), on
127.0.0.1. This process drives them with three clients: our ``RoomClient`` and the real
MeshAgent SDK against localmesh, redis-py against Redis (LPUSH to send, BRPOP to receive).
Rounds are interleaved (each round runs every client in turn) so that both sides see the
same machine; ratios are the median of the per-round ratios, and each server's CPU time
comes from /proc.

    bash bench/run.sh                  # the full run, a few minutes
    bash bench/run.sh --quick          # about a minute, smaller counts
    bash bench/run.sh --update-docs    # also write the table into docs/benchmarks.md and the chart

It exits with 1 when a target of issue 13 is missed (``--no-fail`` only reports).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

from bench.clients import Ours, Redis, Sdk, receive_many, send_many
from bench.harness import FULL_HARNESS, QUICK_HARNESS, HarnessConfig, run_harness
from bench.procs import Localmesh, PeakSampler, ServerProcess, run_localmesh, run_redis
from bench.report import (
    HARNESS_BEGIN,
    HARNESS_END,
    Report,
    Target,
    load_average,
    machine,
    update_docs,
    write_chart,
)

MB = 1024 * 1024
PHASE_TIMEOUT = 600.0  # a phase longer than this is broken, not slow
PAD = "x" * 100  # each queue message: {"i": n, "pad": 100 bytes}


@dataclass(frozen=True)
class Config:
    rounds: int  # interleaved rounds of the throughput phases
    pairs: int  # sequential send+receive pairs per client per round
    pipelined: int  # pipelined messages per client per round (in batches of ``depth``)
    depth: int  # requests in flight in the pipelined phase
    wake_rounds: int  # long-poll wake-ups per client
    pollers: int  # concurrent long-pollers
    deep: int  # messages in the deep queue
    shallow: int  # messages in the shallow queue
    samples: int  # receives timed at each depth
    file_mb: int  # the storage file

    def describe(self) -> str:
        return (
            f"{self.rounds} interleaved rounds of {self.pairs} sequential pairs and "
            f"{self.pipelined} pipelined messages ({self.depth} in flight) per client; "
            f"{self.wake_rounds} wake-ups; {self.pollers} long-pollers; receive at {self.shallow} "
            f"and {self.deep:,} queued ({self.samples} samples); a {self.file_mb} MB file"
        )


FULL = Config(rounds=5, pairs=1000, pipelined=3200, depth=64, wake_rounds=1000, pollers=1000,
              deep=100_000, shallow=100, samples=1000, file_mb=200)
QUICK = Config(rounds=2, pairs=300, pipelined=1280, depth=64, wake_rounds=100, pollers=200,
               deep=10_000, shallow=100, samples=300, file_mb=50)


@dataclass
class Side:
    """One client against its server: throughput and CPU accumulated over the rounds."""

    name: str
    server: ServerProcess
    client: Any
    seconds: float = 0.0
    pairs: int = 0
    cpu: float = 0.0
    rates: list[float] | None = None

    def record(self, pairs: int, seconds: float, cpu: float) -> None:
        self.pairs += pairs
        self.seconds += seconds
        self.cpu += cpu
        self.rates = (self.rates or []) + [pairs / seconds]

    @property
    def rate(self) -> float:
        return self.pairs / self.seconds

    @property
    def cpu_per_op(self) -> float:
        """Server CPU microseconds per queue operation (a pair is two: a send and a receive)."""
        return self.cpu / (2 * self.pairs) * 1e6


def _rate(value: float) -> str:
    return f"{value:,.0f}/s"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} µs"


def _mb(size: float) -> str:
    return f"{size / MB:,.0f} MB"


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median_ratio(ours: list[float], theirs: list[float]) -> float:
    return statistics.median(a / b for a, b in zip(ours, theirs, strict=True))


# ---------------------------------------------------------------- throughput


async def sequential_round(client: Any, queue: str, pairs: int, first: int) -> None:
    for i in range(first, first + pairs):
        await client.send(queue, {"i": i, "pad": PAD})
        got = await client.receive(queue, wait=True)
        if not isinstance(got, dict) or got.get("i") != i:
            raise AssertionError(f"{queue}: sent {i}, received {got!r}")


async def pipelined_round(client: Any, queue: str, total: int, depth: int, first: int) -> None:
    for start in range(first, first + total, depth):
        batch = [{"i": i, "pad": PAD} for i in range(start, start + depth)]
        await send_many(client, queue, batch)
        got = await receive_many(client, queue, depth)
        if sorted(m["i"] for m in got if isinstance(m, dict)) != [m["i"] for m in batch]:
            raise AssertionError(f"{queue}: a pipelined batch came back wrong")


async def throughput(sides: list[Side], config: Config, pipelined: bool) -> None:
    kind = "pipelined" if pipelined else "sequential"
    for side in sides:  # a warm-up round each (connections, caches, queues created)
        await (pipelined_round(side.client, f"warm-{kind}", config.depth * 4, config.depth, 0)
               if pipelined else sequential_round(side.client, f"warm-{kind}", 50, 0))
    for round_ in range(config.rounds):
        # Rotate who goes first, so no client always follows the same neighbour.
        for side in sides[round_ % len(sides):] + sides[: round_ % len(sides)]:
            queue = f"{kind}-{side.name}"
            first = round_ * max(config.pairs, config.pipelined)
            cpu0, t0 = side.server.cpu_seconds(), time.perf_counter()
            if pipelined:
                await pipelined_round(side.client, queue, config.pipelined, config.depth, first)
                pairs = config.pipelined
            else:
                await sequential_round(side.client, queue, config.pairs, first)
                pairs = config.pairs
            side.record(pairs, time.perf_counter() - t0, side.server.cpu_seconds() - cpu0)


def throughput_rows(report: Report, sides: dict[str, Side], pipelined: bool, config: Config) -> None:
    ours, sdk, redis = sides["ours"], sides["sdk"], sides["redis"]
    assert ours.rates and sdk.rates and redis.rates
    label = f"pairs/s, {config.depth}-deep pipelined" if pipelined else "pairs/s, sequential"
    ours_ratio = median_ratio(ours.rates, redis.rates)
    sdk_ratio = median_ratio(sdk.rates, redis.rates)
    report.row(
        f"{label}, our client ÷ Redis", ours=_rate(ours.rate), redis=_rate(redis.rate),
        compared=f"{ours_ratio:.2f}×",
        target=Target(f"{label} (our client)", ours_ratio, 0.5 if pipelined else 0.75, True),
    )
    report.row(
        f"{label}, real SDK ÷ Redis", sdk=_rate(sdk.rate), redis=_rate(redis.rate),
        compared=f"{sdk_ratio:.2f}×",
        target=None if pipelined else Target(f"{label} (real SDK)", sdk_ratio, 0.40, True),
    )
    # Without schedstat, /proc counts CPU in clock ticks (10 ms): a server that used less than
    # one over the rounds is counted as one tick, which only flatters Redis's side less.
    redis_cpu = max(redis.cpu_per_op, 1e6 / os.sysconf("SC_CLK_TCK") / (2 * redis.pairs))
    ours_cpu = ours.cpu_per_op / redis_cpu
    report.row(
        f"server CPU per queue op, {'pipelined' if pipelined else 'sequential'}",
        ours=_us(ours.cpu_per_op / 1e6), sdk=_us(sdk.cpu_per_op / 1e6),
        redis=_us(redis_cpu / 1e6), compared=f"{ours_cpu:.1f}×",
        target=None if pipelined else Target("server CPU per durable op ÷ Redis", ours_cpu, 3.0, False),
        note=None if pipelined else (
            "CPU time of each server process (all threads, user + system) from /proc, over the "
            "timed rounds, ÷ operations (a pair = a send + a receive); the target is on our client's "
            "rounds"),
    )


# ---------------------------------------------------------------- long-poll wake-ups


async def wake_latencies(kind: str, server: ServerProcess, client: Any, rounds: int) -> list[float]:
    """A receive parked at the server; another process sends; send start -> receive return."""
    queue = f"wake-{kind}"
    where = str(server.port)
    key = getattr(server, "api_key", "-")
    sender = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.sender", kind, where, key, queue,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert sender.stdin is not None and sender.stdout is not None
    samples: list[float] = []
    try:
        if await sender.stdout.readline() != b"ready\n":
            raise RuntimeError(f"the {kind} sender did not start")
        await client.receive(queue, wait=False)  # creates the queue
        for round_ in range(rounds):
            receiving = asyncio.ensure_future(client.receive(queue, wait=True))
            # Let the receive reach the server and park there: the sender is another process,
            # so there is nothing to wait on but time. 3 ms is well past a round trip here.
            await asyncio.sleep(0.003)
            sender.stdin.write(f"{round_}\n".encode())
            await sender.stdin.drain()
            message = await asyncio.wait_for(receiving, 30)
            samples.append(time.perf_counter() - message["sent"])
            if message["round"] != round_ or await sender.stdout.readline() != b"sent\n":
                raise AssertionError(f"wake-up round {round_} went wrong: {message!r}")
    finally:
        sender.stdin.close()
        await asyncio.wait_for(sender.wait(), 30)
    return samples


async def wake_rows(report: Report, local: Localmesh, redis_server: ServerProcess,
                    clients: dict[str, Any], rounds: int) -> None:
    results: dict[str, list[float]] = {"ours": [], "sdk": [], "redis": []}
    # Ten interleaved blocks: a p99 is a tail, and the machine's load moves; each client's
    # samples spread over the whole phase.
    per_block = max(1, rounds // 10)
    for _ in range(0, rounds, per_block):
        for kind in results:
            server = redis_server if kind == "redis" else local
            results[kind] += await wake_latencies(kind, server, clients[kind], per_block)
    p = {kind: (percentile(s, 50), percentile(s, 99)) for kind, s in results.items()}
    cell = {kind: f"{_ms(p50)} / {_ms(p99)}" for kind, (p50, p99) in p.items()}
    report.row(
        "long-poll wake p50 / p99 (another process sends)", ours=cell["ours"], sdk=cell["sdk"],
        redis=cell["redis"], compared=f"{p['ours'][1] / p['redis'][1]:.2f}× p99",
        target=Target("wake p99 ÷ Redis BRPOP p99 (our client)", p["ours"][1] / p["redis"][1], 1.0,
                      False),
        note="from the start of the send in the other process to the return of the waiting "
             "receive (CLOCK_MONOTONIC is one clock for both processes)",
    )


# ---------------------------------------------------------------- many long-pollers


async def pollers_row(report: Report, local: Localmesh, redis_server: ServerProcess,
                      count: int) -> None:
    async def measure(kind: str) -> tuple[int, list[float]]:
        server = redis_server if kind == "redis" else local
        queue = f"pollers-{kind}"
        connect: Callable[[int], Awaitable[Any]] = (
            (lambda i: Redis.connect(server.port)) if kind == "redis"
            else (lambda i: Ours.connect(local, "bench-pollers", f"poller-{i}")))
        clients: list[Any] = []
        for start in range(0, count, 50):  # connect 50 at a time
            clients += await asyncio.gather(*(connect(i) for i in range(start, min(count, start + 50))))
        sender = await (Redis.connect(server.port) if kind == "redis"
                        else Ours.connect(local, "bench-pollers", "sender"))
        woken: list[float] = []

        async def poll(client: Any) -> None:
            message = await client.receive(queue, wait=True)
            woken.append(time.perf_counter() - message["sent"])

        try:
            await sender.receive(queue, wait=False)  # creates the queue
            polls = [asyncio.ensure_future(poll(client)) for client in clients]
            await asyncio.sleep(1.0 + count / 1000)  # every poll parked at the server
            rss = server.rss()
            for i in range(count):
                await sender.send(queue, {"sent": time.perf_counter(), "i": i})
            await asyncio.wait_for(asyncio.gather(*polls), 60)
        finally:
            for client in [*clients, sender]:
                with contextlib.suppress(Exception):
                    await client.close()
        return rss, woken

    ours_rss, ours = await measure("ours")
    redis_rss, theirs = await measure("redis")
    p99 = percentile(ours, 99)
    report.row(
        f"{count:,} concurrent long-pollers: server RSS", ours=_mb(ours_rss), redis=_mb(redis_rss),
        target=Target(f"{count:,} long-pollers: server RSS (MB)", ours_rss / MB, 200, False),
    )
    report.row(
        f"{count:,} concurrent long-pollers: wake p99", ours=_ms(p99), redis=_ms(percentile(theirs, 99)),
        target=Target(f"{count:,} long-pollers: wake p99 (ms)", p99 * 1000, 10, False),
        note=f"{count:,} connections each waiting in a receive; one sender then sends {count:,} "
             "messages one after another; wake = send start to that receive's return",
    )


# ---------------------------------------------------------------- receive at depth


async def depth_row(report: Report, client: Ours, config: Config) -> None:
    shallow, deep = "depth-shallow", "depth-deep"
    fill = 256
    for queue, size in ((shallow, config.shallow + config.samples), (deep, config.deep)):
        for start in range(0, size, fill):
            await send_many(client, queue, [{"i": i, "pad": PAD}
                                            for i in range(start, min(size, start + fill))])
    times: dict[str, list[float]] = {shallow: [], deep: []}
    for _ in range(config.samples):
        for queue in (shallow, deep):  # interleaved
            t0 = time.perf_counter()
            if await client.receive(queue, wait=False) is None:
                raise AssertionError(f"{queue} ran dry")
            times[queue].append(time.perf_counter() - t0)
    at_shallow, at_deep = statistics.median(times[shallow]), statistics.median(times[deep])
    report.row(
        f"receive at {config.shallow} vs {config.deep:,} queued (median)",
        ours=f"{_ms(at_shallow)} / {_ms(at_deep)}", compared=f"{at_deep / at_shallow:.2f}×",
        target=Target(f"receive at {config.deep:,} ÷ at {config.shallow} queued", at_deep / at_shallow,
                      1.2, False),
    )


# ---------------------------------------------------------------- storage


async def storage_rows(report: Report, local: Localmesh, clients: dict[str, Any], config: Config) -> None:
    data = os.urandom(config.file_mb * MB)
    digest = hashlib.sha256(data).digest()
    cells: dict[str, dict[str, str]] = {}
    speeds: dict[str, tuple[float, float, int]] = {}
    for kind in ("ours", "sdk"):
        storage = clients[kind].storage
        path = f"bench/{kind}.bin"
        with PeakSampler(local) as up:
            t0 = time.perf_counter()
            if kind == "ours":
                await storage.upload(path, data, overwrite=True)
            else:
                await storage.upload(path=path, data=data, overwrite=True)
            up_s = time.perf_counter() - t0
        with PeakSampler(local) as down:
            t0 = time.perf_counter()
            got = await (storage.download(path) if kind == "ours" else storage.download(path=path))
            down_s = time.perf_counter() - t0
        if hashlib.sha256(got.data).digest() != digest:
            raise AssertionError(f"storage ({kind}): the download differs from the upload")
        del got
        raised = max(up.raised_by, down.raised_by)
        speeds[kind] = (len(data) / MB / up_s, len(data) / MB / down_s, raised)
        cells[kind] = {"up": f"{speeds[kind][0]:,.0f} MB/s", "down": f"{speeds[kind][1]:,.0f} MB/s",
                       "rss": f"+{_mb(raised)}"}
    ours = speeds["ours"]
    label = f"storage, {config.file_mb} MB file"
    report.row(f"{label}: upload", ours=cells["ours"]["up"], sdk=cells["sdk"]["up"],
               target=Target("storage upload MB/s (our client)", ours[0], 150, True))
    report.row(f"{label}: download", ours=cells["ours"]["down"], sdk=cells["sdk"]["down"],
               target=Target("storage download MB/s (our client)", ours[1], 150, True))
    worst = max(speeds["ours"][2], speeds["sdk"][2])
    report.row(f"{label}: server peak RSS raised by", ours=cells["ours"]["rss"], sdk=cells["sdk"]["rss"],
               target=Target("storage: server peak RSS raise (MB, either client)", worst / MB, 64, False),
               note="the server's peak RSS (VmHWM, reset before each transfer) minus its RSS before")


# ---------------------------------------------------------------- start-up


START_SCRIPT = """
import asyncio, time
t0 = time.perf_counter()
from localmesh import RoomClient, RoomServer
t1 = time.perf_counter()
async def main():
    t2 = time.perf_counter()
    async with RoomServer() as server:
        token = server.mint_token(room="r", name="a")
        async with RoomClient(server.url, "r", token) as room:
            await room.queues.send("q", {"n": 1})
            assert await room.queues.receive("q", wait=False) == {"n": 1}
            t3 = time.perf_counter()
    print(t1 - t0, t3 - t2)
asyncio.run(main())
"""


def start_row(report: Report, runs: int = 5) -> None:
    imports, starts = [], []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", START_SCRIPT], check=True, capture_output=True,
                             text=True, timeout=120).stdout.split()
        imports.append(float(out[0]))
        starts.append(float(out[1]))
    report.row(
        "fresh in-process server + client: start, first send+receive",
        ours=_ms(statistics.median(starts)),
        note=f"median of {runs} fresh processes; importing localmesh before that took "
             f"{_ms(statistics.median(imports))}",
    )


# ---------------------------------------------------------------- driver


async def run(config: Config, folder: Path) -> Report:
    report = Report()
    with run_localmesh(folder) as local, run_redis(folder) as redis_server:
        print(f"localmesh serve (pid {local.pid}) on {local.port}, redis-server (pid "
              f"{redis_server.pid}) on {redis_server.port}; load average {load_average()}", flush=True)
        clients = {
            "ours": await Ours.connect(local, "bench", "ours"),
            "sdk": await Sdk.connect(local, "bench", "sdk"),
            "redis": await Redis.connect(redis_server.port),
        }
        sides = {kind: Side(kind, redis_server if kind == "redis" else local, client)
                 for kind, client in clients.items()}
        try:
            for pipelined in (False, True):
                fresh = {kind: replace(side, seconds=0.0, pairs=0, cpu=0.0, rates=None)
                         for kind, side in sides.items()}
                await asyncio.wait_for(throughput(list(fresh.values()), config, pipelined), PHASE_TIMEOUT)
                throughput_rows(report, fresh, pipelined, config)
            wake_clients = {
                "ours": await Ours.connect(local, "bench-wake", "receiver"),
                "sdk": await Sdk.connect(local, "bench-wake", "receiver-sdk"),
                "redis": await Redis.connect(redis_server.port),
            }
            try:
                await asyncio.wait_for(
                    wake_rows(report, local, redis_server, wake_clients, config.wake_rounds), PHASE_TIMEOUT)
            finally:
                for client in wake_clients.values():
                    await client.close()
            await asyncio.wait_for(pollers_row(report, local, redis_server, config.pollers), PHASE_TIMEOUT)
            await asyncio.wait_for(depth_row(report, clients["ours"], config), PHASE_TIMEOUT)
            await asyncio.wait_for(storage_rows(report, local, clients, config), PHASE_TIMEOUT)
        finally:
            for client in clients.values():
                with contextlib.suppress(Exception):
                    await client.close()
    start_row(report)
    return report


def _raise_open_files() -> None:
    # 1,000 long-pollers: a socket each here and in the server (which inherits the limit).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts: about a minute")
    parser.add_argument("--rounds", type=int, help="interleaved throughput rounds")
    parser.add_argument("--file-mb", type=int, help="storage phase: file size in MB")
    parser.add_argument("--pollers", type=int, help="concurrent long-pollers")
    parser.add_argument("--update-docs", action="store_true",
                        help="write the table into docs/benchmarks.md and the chart beside it")
    parser.add_argument("--no-fail", action="store_true", help="exit 0 even when a target is missed")
    parser.add_argument("--harness", action="store_true",
                        help="measure the test harness instead (server start/stop, reset, plugin "
                             "import, pytest runs of trivial tests)")
    parser.add_argument("--tests", type=int, help="harness: trivial tests in each pytest run")
    args = parser.parse_args(argv)
    if args.harness:
        harness_main(args, parser)
        return
    config = QUICK if args.quick else FULL
    overrides = {k: v for k, v in (("rounds", args.rounds), ("file_mb", args.file_mb),
                                    ("pollers", args.pollers)) if v is not None}
    if any(v <= 0 for v in overrides.values()):
        parser.error("counts and sizes must be positive")
    config = replace(config, **overrides)
    _raise_open_files()
    os.environ.setdefault("MESHAGENT_DISABLE_VERSION_CHECK", "1")
    print(f"machine: {machine()}\nsettings: {config.describe()}", flush=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="localmesh-bench-") as tmp:
        report = asyncio.run(run(config, Path(tmp)))
    elapsed = time.perf_counter() - started
    print(f"\n{report.markdown()}\n\ntotal {elapsed:.0f} s; load average {load_average()}")
    if args.update_docs:
        header = (
            f"Measured {date.today().isoformat()} with `bash bench/run.sh"
            f"{' --quick' if args.quick else ''}` ({elapsed:.0f} s) on {machine()}; load average "
            f"at the end {load_average()}. Settings: {config.describe()}."
        )
        update_docs(report, header)
        write_chart(report)
    if report.missed:
        print("targets missed: " + "; ".join(f"{t.label}: {t.value:.3g} (target {t.describe()})"
                                             for t in report.missed))
        if not args.no_fail:
            raise SystemExit(1)


def harness_main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    config = QUICK_HARNESS if args.quick else FULL_HARNESS
    if args.tests is not None:
        if args.tests <= 0:
            parser.error("--tests must be positive")
        config = HarnessConfig(rounds=config.rounds, tests=args.tests)
    print(f"machine: {machine()}")
    report = Report()
    started = time.perf_counter()
    run_harness(config, report)
    elapsed = time.perf_counter() - started
    print(f"\n{report.markdown()}\n\ntotal {elapsed:.1f} s")
    if args.update_docs:
        header = (
            f"Measured {date.today().isoformat()} with `python -m bench --harness"
            f"{' --quick' if args.quick else ''}` ({elapsed:.0f} s) on {machine()}; load average "
            f"at the end {load_average()}. Settings: {config.describe()}."
        )
        update_docs(report, header, HARNESS_BEGIN, HARNESS_END)
