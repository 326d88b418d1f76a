"""Helpers of the Studio tests: a ``localmesh serve`` process and the ``localmesh`` commands
run against it, the system Chromium, and waiting on other processes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from localmesh.emulator.studio import login_link as studio_login_link
from localmesh.protocol.tokens import ApiKey

LOCALMESH = str(Path(sys.executable).parent / "localmesh")
STOP = 15.0  # seconds a process may take to end after SIGTERM
POET_RULE = "You are a poet. Save what you write in room storage."  # as scripts/quickstart.sh
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    named = os.environ.get("LOCALMESH_CHROMIUM")
    if named:
        return named if os.access(named, os.X_OK) else shutil.which(named)
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def until(condition, timeout: float, what: str, step: float = 0.05):
    """Wait for ``condition()`` to return something true (polled; for other processes)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


@dataclass
class Served:
    """A ``localmesh serve`` process, and how to run the ``localmesh`` commands against it."""

    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    children: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_key(self) -> str:
        return self.env["MESHAGENT_API_KEY"]

    def place(self) -> list[str]:
        return ["--port", str(self.port), "--data-dir", str(self.data_dir)]

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([LOCALMESH, *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout, cwd=self.data_dir.parent)

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        """A ``localmesh`` command in the background (stopped at teardown if still running)."""
        log = (self.data_dir.parent / f"{args[0]}-{len(self.children)}.log").open("wb")
        child = subprocess.Popen([LOCALMESH, *args], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                 cwd=self.data_dir.parent)
        self.children.append(child)
        return child

    def login_link(self) -> str:
        """What ``localmesh studio --no-open`` prints, minted here (the command takes seconds
        to start; ``test_studio_cli`` runs it)."""
        return studio_login_link(self.url, ApiKey.parse(self.api_key))

    def send_task(self, room: str, queue: str, message: str) -> None:
        result = self.run("room", "queue", "send", "--room", room, "--queue", queue, "--json", message)
        assert result.returncode == 0, result.stdout + result.stderr

    def worker(self, room: str, name: str, queue: str, *extra: str) -> subprocess.Popen[bytes]:
        return self.start("worker", "join", "--room", room, "--agent-name", name, "--queue", queue,
                          "--require-storage", "--rule", POET_RULE, *extra)


def stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=STOP)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()
    return process.returncode


