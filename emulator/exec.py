"""``localmesh exec -- CMD``: a throwaway server around one command.

Start a server, run CMD with the server's environment (``MESHAGENT_API_URL`` and the rest
of what ``localmesh env`` prints), stop the server when CMD ends, and exit with CMD's
status: what ``firebase emulators:exec`` does for Firebase. Ctrl-C and SIGTERM are passed
on to CMD; CMD never outlives the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Sequence
from pathlib import Path

from .server import RoomServer

KILL_GRACE = 5.0  # seconds CMD gets after SIGTERM before it is killed


class CommandNotFound(OSError):
    pass


async def exec_with_server(
    server: RoomServer, command: Sequence[str], *, export_on_exit: Path | None = None,
    started: Callable[[RoomServer], None] | None = None,
) -> int:
    """Run ``command`` against ``server`` (started and stopped here, ``started`` told in
    between, before the command starts); its exit status (128 + N for a command ended by
    signal N)."""
    await server.start()
    if started is not None:
        started(server)
    child: asyncio.subprocess.Process | None = None
    loop = asyncio.get_running_loop()
    forwarded = (signal.SIGINT, signal.SIGTERM)
    try:
        try:
            child = await asyncio.create_subprocess_exec(
                *command, env={**os.environ, **server.env()}
            )
        except FileNotFoundError:
            raise CommandNotFound(f"command not found: {command[0]}") from None
        except PermissionError:
            raise CommandNotFound(f"command cannot be run: {command[0]}") from None
        for sig in forwarded:
            loop.add_signal_handler(sig, child.send_signal, sig)
        status = await child.wait()
        if export_on_exit is not None:
            await server.export(export_on_exit)
        return status if status >= 0 else 128 - status
    finally:
        for sig in forwarded:
            loop.remove_signal_handler(sig)
        if child is not None and child.returncode is None:
            await _end(child)
        await server.stop()


async def _end(child: asyncio.subprocess.Process) -> None:
    """Terminate, then kill after a grace period: the command never outlives the server."""
    with contextlib.suppress(ProcessLookupError):
        child.terminate()
    try:
        async with asyncio.timeout(KILL_GRACE):
            await child.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            child.kill()
        await child.wait()
