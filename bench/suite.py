"""The localmesh benchmark: queues, long-poll wake-ups and storage through the real SDK.

Everything runs in this process on 127.0.0.1: an ``emulator.RoomServer`` with its SQLite
files in a temporary directory, and real ``meshagent.api.RoomClient`` connections over
websockets. Client and server share one event loop, so the numbers are the round trip of
the whole stack on one core: SDK encode, websocket, emulator, SQLite, and back.

    python -m bench            # ~30-60 s
    python -m bench --quick    # ~10 s
    python -m bench --update-docs   # also rewrite the results block of docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from meshagent.api import RoomClient
from meshagent.api.websocket_protocol import WebSocketClientProtocol

from localmesh.emulator import RoomServer

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench:results:begin -->", "<!-- bench:results:end -->"
PHASE_TIMEOUT = 120.0  # a phase that takes longer than this is broken, not slow
MB = 1024 * 1024
ONE_PROCESS = "client + server, one process"


@dataclass(frozen=True)
class Config:
    messages: int  # sequential phase: N sends, then N receives
    pipelined: int  # pipelined phase: total messages
    workers: int  # pipelined phase: concurrent senders, and as many receivers
    rounds: int  # long-poll wake-up rounds
    file_mb: int  # storage upload/download size
    payload: int  # bytes of padding in each queue message
    repeats: int  # storage round trips; the median is reported

    def describe(self) -> str:
        return (
            f"{self.messages} sequential and {self.pipelined} pipelined messages "
            f"({self.workers}+{self.workers} clients, {self.payload} B of padding each), "
            f"{self.rounds} wake-up rounds, a {self.file_mb} MB file {self.repeats}x"
        )


FULL = Config(messages=10000, pipelined=8000, workers=4, rounds=1000, file_mb=50, payload=128, repeats=3)
QUICK = Config(messages=1000, pipelined=1000, workers=4, rounds=200, file_mb=50, payload=128, repeats=1)


@dataclass
class Row:
    name: str
    value: str
    detail: str = ""


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)

    def add(self, name: str, value: str, detail: str = "") -> None:
        self.rows.append(Row(name, value, detail))
        print(f"  {name:<44} {value:>14}  {detail}", flush=True)

    def markdown(self) -> str:
        lines = ["| measurement | result | detail |", "|---|---:|---|"]
        lines += [f"| {r.name} | {r.value} | {r.detail} |" for r in self.rows]
        return "\n".join(lines)


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile of ``samples`` (q in 0..100)."""
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def latency_detail(samples: list[float]) -> str:
    return f"p50 {ms(percentile(samples, 50))}, p99 {ms(percentile(samples, 99))}, n={len(samples)}"


def peak_rss_mb() -> float:
    # Linux reports kilobytes, macOS bytes.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (MB if sys.platform == "darwin" else 1024)


@contextlib.asynccontextmanager
async def connect(server: RoomServer, room: str, name: str) -> AsyncIterator[RoomClient]:
    token = server.mint_token(room=room, name=name)
    protocol = WebSocketClientProtocol(url=server.room_url(room), token=token)
    async with RoomClient(protocol_factory=protocol.create_factory()) as client:
        yield client


# ---------------------------------------------------------------- phases


async def sequential_queue(server: RoomServer, config: Config, report: Report) -> None:
    queue = "bench-sequential"
    pad = "x" * config.payload
    async with connect(server, "bench-q", "client") as room:
        await room.queues.open(name=queue)
        sends: list[float] = []
        started = time.perf_counter()
        for i in range(config.messages):
            t0 = time.perf_counter()
            await room.queues.send(name=queue, message={"i": i, "pad": pad})
            sends.append(time.perf_counter() - t0)
        send_total = time.perf_counter() - started

        receives: list[float] = []
        started = time.perf_counter()
        for i in range(config.messages):
            t0 = time.perf_counter()
            message = await room.queues.receive(name=queue, wait=False)
            receives.append(time.perf_counter() - t0)
            if not isinstance(message, dict) or message.get("i") != i:
                raise AssertionError(f"receive {i}: got {message!r}")
        receive_total = time.perf_counter() - started
        if await room.queues.receive(name=queue, wait=False) is not None:
            raise AssertionError("the queue should be empty")
    n = config.messages
    report.add("queue send, sequential", f"{n / send_total:,.0f} msg/s", latency_detail(sends))
    report.add("queue receive, sequential", f"{n / receive_total:,.0f} msg/s", latency_detail(receives))


async def pipelined_queue(server: RoomServer, config: Config, report: Report) -> None:
    """``workers`` senders and ``workers`` receivers at once, each on its own connection."""
    queue = "bench-pipelined"
    pad = "x" * config.payload
    total, workers = config.pipelined, config.workers
    server.long_poll_window = 0.25  # idle receivers give up quickly once everything arrived
    received: list[int] = []
    done = asyncio.Event()
    finished_at = 0.0

    async def sender(index: int, room: RoomClient) -> None:
        for i in range(index, total, workers):
            await room.queues.send(name=queue, message={"i": i, "pad": pad})

    async def receiver(room: RoomClient) -> None:
        nonlocal finished_at
        while not done.is_set():  # bounded: every round either takes a message or times out
            message = await room.queues.receive(name=queue, wait=True)
            if message is None:
                continue
            received.append(message["i"])  # type: ignore[index]
            if len(received) == total:
                finished_at = time.perf_counter()
                done.set()

    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(connect(server, "bench-p", f"client-{i}"))
            for i in range(2 * workers)
        ]
        senders, receivers = clients[:workers], clients[workers:]
        await senders[0].queues.open(name=queue)
        started = time.perf_counter()
        receiving = [asyncio.create_task(receiver(room)) for room in receivers]
        await asyncio.gather(*(sender(i, room) for i, room in enumerate(senders)))
        sent_at = time.perf_counter()
        await asyncio.wait_for(done.wait(), PHASE_TIMEOUT)
        await asyncio.gather(*receiving)
    if sorted(received) != list(range(total)):
        raise AssertionError("pipelined: messages were lost or duplicated")
    report.add(
        f"queue send+receive, {workers}+{workers} clients",
        f"{total / (finished_at - started):,.0f} msg/s",
        f"{total} messages, first send to last receive {finished_at - started:.2f} s; "
        f"the senders were done after {sent_at - started:.2f} s",
    )


async def long_poll_wakeup(server: RoomServer, config: Config, report: Report) -> None:
    """A receive already parked at the server; another client sends; time from the start of
    ``send()`` to the moment the waiting ``receive()`` returns in the receiving client."""
    queue = "bench-wakeup"
    server.long_poll_window = 5.0
    samples: list[float] = []
    queues = server.state.queues

    async def receive(rx: RoomClient) -> tuple[Any, float]:
        message = await rx.queues.receive(name=queue, wait=True)
        return message, time.perf_counter()

    async with connect(server, "bench-w", "receiver") as rx, connect(server, "bench-w", "sender") as tx:
        await tx.queues.open(name=queue)
        for i in range(config.rounds):
            waiting = asyncio.create_task(receive(rx))
            await _until_waiting(queues, "bench-w", queue)
            t0 = time.perf_counter()
            await tx.queues.send(name=queue, message={"i": i})
            message, received_at = await asyncio.wait_for(waiting, PHASE_TIMEOUT)
            samples.append(received_at - t0)
            if not isinstance(message, dict) or message.get("i") != i:
                raise AssertionError(f"wake-up round {i}: got {message!r}")
    p50 = ms(percentile(samples, 50))
    report.add("long-poll wake-up (send -> waiting receive)", p50, latency_detail(samples))


async def _until_waiting(queues: Any, room: str, queue: str) -> None:
    """Wait (at most 2 s) until the emulator holds a waiting receive on ``room``/``queue``."""
    async with asyncio.timeout(2.0):
        await queues.until_waiting(room, queue)


async def storage_round_trip(server: RoomServer, config: Config, report: Report) -> None:
    """Upload then download one random file with the SDK's ``upload``/``download``."""
    data = os.urandom(config.file_mb * MB)
    uploads: list[float] = []
    downloads: list[float] = []
    async with connect(server, "bench-s", "client") as room:
        for _ in range(config.repeats):
            t0 = time.perf_counter()
            await room.storage.upload(path="bench/big.bin", data=data, overwrite=True)
            uploads.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            downloaded = await room.storage.download(path="bench/big.bin")
            downloads.append(time.perf_counter() - t0)
            if downloaded.data != data:
                raise AssertionError("storage: the download differs from the upload")
            del downloaded
    for name, times in (("upload", uploads), ("download", downloads)):
        median = percentile(times, 50)
        report.add(
            f"storage {name}, {config.file_mb} MB", f"{config.file_mb / median:,.1f} MB/s",
            f"median of {len(times)}: {median:.2f} s",
        )


# ---------------------------------------------------------------- driver


async def run(config: Config, data_dir: Path) -> Report:
    report = Report()
    report.add("peak RSS at start", f"{peak_rss_mb():,.0f} MB", "Python, SDK and emulator imported")
    async with RoomServer(data_dir=data_dir, long_poll_window=1.0) as server:
        print(f"localmesh benchmark: emulator at {server.url}, SQLite in {data_dir}", flush=True)
        for phase in (sequential_queue, pipelined_queue, long_poll_wakeup):
            await asyncio.wait_for(phase(server, config, report), PHASE_TIMEOUT)
        report.add("peak RSS after the queue phases", f"{peak_rss_mb():,.0f} MB", ONE_PROCESS)
        await asyncio.wait_for(storage_round_trip(server, config, report), PHASE_TIMEOUT)
        report.add("peak RSS after storage", f"{peak_rss_mb():,.0f} MB", ONE_PROCESS)
    return report


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def update_docs(report: Report, config: Config, quick: bool, elapsed: float) -> None:
    text = DOCS.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{DOCS} has no {BEGIN} ... {END} block to replace")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    block = (
        f"{BEGIN}\n"
        f"Measured {date.today().isoformat()} with `python -m bench{' --quick' if quick else ''}` "
        f"({elapsed:.0f} s) on {machine()}. Settings: {config.describe()}.\n\n"
        f"{report.markdown()}\n"
        f"{END}"
    )
    DOCS.write_text(head + block + tail)
    print(f"wrote the results into {DOCS}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts: about 10 s")
    parser.add_argument("--messages", type=int, help="sequential phase: messages sent then received")
    parser.add_argument("--rounds", type=int, help="long-poll wake-up rounds")
    parser.add_argument("--file-mb", type=int, help="storage phase: file size in MB")
    parser.add_argument("--update-docs", action="store_true", help=f"rewrite the results block of {DOCS}")
    args = parser.parse_args(argv)
    config = QUICK if args.quick else FULL
    overrides = {k: v for k, v in (("messages", args.messages), ("rounds", args.rounds),
                                    ("file_mb", args.file_mb)) if v is not None}
    if any(v <= 0 for v in overrides.values()):
        parser.error("counts and sizes must be positive")
    config = Config(**{**config.__dict__, **overrides})
    logging.basicConfig(level=logging.WARNING)
    for name, value in {"MESHAGENT_DISABLE_VERSION_CHECK": "1"}.items():
        os.environ.setdefault(name, value)
    print(f"machine: {machine()}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="localmesh-bench-") as tmp:
        report = asyncio.run(run(config, Path(tmp) / "data"))
    elapsed = time.perf_counter() - started
    print(f"\n{report.markdown()}\n\ntotal {elapsed:.1f} s")
    if args.update_docs:
        update_docs(report, config, args.quick, elapsed)
