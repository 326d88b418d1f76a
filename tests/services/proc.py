"""Process checks for the service tests, from /proc (Linux)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

GONE_TIMEOUT = 15.0


def alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (dead, not yet reaped) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat.rsplit(b")", 1)[1].split()[0] != b"Z"


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid``."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_bytes().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found and alive(child):
                found.add(child)
                todo.append(child)
    return found


async def until_gone(pids: set[int], timeout: float = GONE_TIMEOUT) -> None:
    """Wait until none of ``pids`` runs; fail naming the survivors."""
    try:
        async with asyncio.timeout(timeout):
            while any(alive(pid) for pid in pids):
                await asyncio.sleep(0.05)
    except TimeoutError:
        survivors = {pid: Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                     for pid in pids if alive(pid)}
        raise AssertionError(f"processes outlived their supervisor: {survivors}") from None
