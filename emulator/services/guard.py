"""The watchdog between the supervisor and one service process (Linux; standard library only).

    python guard.py --parent PID --grace SECONDS [--poke URL] -- COMMAND...

Run as a script (never imported by the server), so it starts in a few milliseconds. It:
- asks the kernel for SIGTERM when its parent (the server) dies, even by ``kill -9``;
- starts COMMAND in a process group of its own, with SIGKILL as that child's parent-death
  signal, so the service cannot outlive the guard either;
- becomes a child subreaper, so processes the service daemonises stay its descendants;
- on SIGTERM/SIGINT/SIGHUP (or its parent's death): SIGTERM to the service's group, a GET
  of ``--poke`` (an idle aiohttp server only notices SIGTERM when I/O wakes it), then
  SIGKILL to the group after the grace period;
- when the service ends, kills what is left of its group and of its descendants, and exits
  with the service's exit code (128 + N for a signal N).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import subprocess
import sys
import threading
import urllib.request

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
_libc = ctypes.CDLL(None, use_errno=True)


class _Stop(Exception):
    """Raised from a signal handler to break out of the blocking wait."""


def _prctl(option: int, value: int) -> None:
    if _libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}) failed")


def _child_setup() -> None:
    os.setpgid(0, 0)
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _children() -> list[int]:
    """Processes whose parent is this guard (reparented descendants included)."""
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me:
            found.append(int(entry))
    return found


def _reap_everything(pgid: int) -> None:
    _kill_group(pgid, signal.SIGKILL)
    # Descendants that left the group were reparented to us (subreaper): end them too.
    for _ in range(100):
        children = _children()
        if not children:
            return
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in children:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def _poke(url: str) -> None:
    try:
        urllib.request.urlopen(url, timeout=0.5).close()
    except Exception:  # only a nudge: any answer, or none, will do
        pass


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="guard")
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--grace", type=float, default=5.0)
    parser.add_argument("--poke", default=None)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    options = parser.parse_args(argv)
    command = options.command[1:] if options.command[:1] == ["--"] else options.command
    if not command:
        parser.error("no command to run")

    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != options.parent:
        return 1  # the server died before we could ask to follow it
    _prctl(PR_SET_CHILD_SUBREAPER, 1)

    def stop(signum: int, frame: object) -> None:
        raise _Stop

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)
    try:
        child = subprocess.Popen(command, preexec_fn=_child_setup)
    except _Stop:
        return 143
    except OSError as error:
        print(f"localmesh: cannot start {command[0]!r}: {error}", file=sys.stderr, flush=True)
        return 127
    try:
        status = child.wait()
    except _Stop:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        _kill_group(child.pid, signal.SIGTERM)
        if options.poke:
            threading.Thread(target=_poke, args=(options.poke,), daemon=True).start()
        timer = threading.Timer(options.grace, _kill_group, (child.pid, signal.SIGKILL))
        timer.start()
        status = child.wait()
        timer.cancel()
    _reap_everything(child.pid)
    return status if status >= 0 else 128 - status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
