"""The abuse suite's tools: a server in its own process, its memory, latency figures.

Memory figures need the server in its own process (``localmesh serve``): RSS is read from
``/proc/<pid>/status``. Every case records a ``Figure`` (what the abuser got back, RSS
before and after, other clients' p99) that the suite prints at the end and writes to
``$LOCALMESH_ABUSE_REPORT`` when set (docs/hardening.md quotes them).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from localmesh_serve import serve

from localmesh.protocol.tokens import ApiKey, mint_token

MiB = 1024 * 1024
FIGURES: list[Figure] = []


@dataclass
class Figure:
    case: str
    abuser_got: str
    target: str = ""
    rss_before_mb: float | None = None
    rss_peak_mb: float | None = None
    rss_after_mb: float | None = None
    others_p99_ms: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def record(self) -> Figure:
        FIGURES.append(self)
        return self


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """A process's resident memory now (``VmRSS``) or at its peak so far (``VmHWM``), in MB."""
    text = Path(f"/proc/{pid}/status").read_text()
    kib = int(re.search(rf"{field}:\s+(\d+) kB", text).group(1))
    return round(kib / 1024, 1)


def p99_ms(samples: list[float]) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2)


class ServedRoom:
    """``localmesh serve`` in a child process on 127.0.0.1 (ended with the test)."""

    def __init__(self, tmp: Path, *limits: str, in_memory: bool = True,
                 nofile: int | None = None, extra: tuple[str, ...] = ()) -> None:
        self.tmp = tmp
        self.limits = limits
        self.in_memory = in_memory
        self.nofile = nofile
        self.extra = extra
        self.process: asyncio.subprocess.Process | None = None
        self.url = ""
        self.key: ApiKey | None = None
        self.log = tmp / "serve.log"
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> ServedRoom:
        args = [*self.extra]
        for limit in self.limits:
            args += ["--limit", limit]
        served = await self._stack.enter_async_context(serve(
            *args, data_dir=None if self.in_memory else self.tmp / "data", log=self.log,
            nofile=self.nofile))
        self.process = served.process
        self.url = served.url
        self.key = ApiKey.parse(served.exports["MESHAGENT_API_KEY"])
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def rss(self) -> float:
        return rss_mb(self.pid)

    def peak_rss(self) -> float:
        """The server's highest resident memory since it started (the kernel's VmHWM)."""
        return rss_mb(self.pid, "VmHWM")

    def room_url(self, room: str) -> str:
        return self.url.replace("http", "ws", 1) + f"/rooms/{room}"

    def token(self, room: str, name: str = "tester", api: dict[str, Any] | None = None) -> str:
        assert self.key is not None
        return mint_token(self.key, room=room, name=name, api=api)

    def terminate(self, sig: int = signal.SIGTERM) -> None:
        assert self.process is not None
        with suppress(ProcessLookupError):  # it has ended already (a second SIGTERM came late)
            self.process.send_signal(sig)

    async def healthz(self, timeout: float = 5.0) -> int:
        async with httpx.AsyncClient(timeout=timeout) as client:
            return (await client.get(self.url + "/healthz")).status_code


async def timed_calls(call: Callable[[], Awaitable[Any]], until: asyncio.Event,
                      *, at_least: int = 20, limit_s: float = 60.0) -> list[float]:
    """Latencies of ``call`` repeated until ``until`` is set (and at least ``at_least`` times)."""
    samples: list[float] = []
    deadline = time.monotonic() + limit_s
    while (not until.is_set() or len(samples) < at_least) and time.monotonic() < deadline:
        start = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - start)
    return samples


def write_report() -> str:
    lines = ["| case | abuser got | target | RSS before → peak → after (MB) | others' p99 (ms) |",
             "|---|---|---|---|---|"]
    for figure in FIGURES:
        rss = " → ".join("–" if v is None else f"{v:g}" for v in (
            figure.rss_before_mb, figure.rss_peak_mb, figure.rss_after_mb))
        p99 = "–" if figure.others_p99_ms is None else f"{figure.others_p99_ms:g}"
        lines.append(f"| {figure.case} | {figure.abuser_got} | {figure.target} | {rss} | {p99} |")
    table = "\n".join(lines)
    target = os.environ.get("LOCALMESH_ABUSE_REPORT")
    if target:
        Path(target).write_text(json.dumps([asdict(f) for f in FIGURES], indent=2) + "\n\n" + table + "\n")
    return table
