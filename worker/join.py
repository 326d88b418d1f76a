"""``localmesh worker join``'s work, apart from argument parsing: build, run, report, stop."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from dataclasses import dataclass, field

from localmesh.worker.agent import Worker, WorkerStats
from localmesh.worker.anthropic import AnthropicMessagesAdapter, default_anthropic_base_url
from localmesh.worker.errors import RoomError
from localmesh.worker.llm import LLMAdapter, OpenAIResponsesAdapter, default_base_url
from localmesh.worker.requirements import RequiredStorage
from localmesh.worker.room import RoomClient


@dataclass
class JoinOptions:
    room: str
    agent_name: str
    queue: str
    require_storage: bool = False
    room_rules: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)
    # An adapter to use instead of the HTTP one (the CLI builds one for --llm-script).
    llm_adapter: LLMAdapter | None = None
    model: str | None = None
    max_messages: int | None = None
    until_idle: bool = False


async def load_room_rules(room: RoomClient, paths: list[str]) -> list[str]:
    """The non-empty lines of each rules file; a missing file is created empty, so people
    can find and edit it in the room (as the MeshAgent CLI does)."""
    rules: list[str] = []
    for path in paths:
        if not await room.storage.exists(path):
            await room.storage.upload(path, b"", overwrite=False)
            continue
        text = (await room.storage.download(path)).text
        rules += [line.strip() for line in text.splitlines() if line.strip()]
    return rules


def build_adapter(options: JoinOptions, api_url: str) -> LLMAdapter:
    """The adapter given, else the one the MeshAgent CLI picks for the model: Anthropic's
    Messages API for ``claude-*``, OpenAI Responses for anything else (``grok-*`` included)."""
    if options.llm_adapter is not None:
        return options.llm_adapter
    if is_claude_model(options.model):
        return AnthropicMessagesAdapter(model=options.model, base_url=default_anthropic_base_url(api_url))
    return OpenAIResponsesAdapter(model=options.model, base_url=default_base_url(api_url))


def is_claude_model(model: str | None) -> bool:
    return bool(model) and model.startswith("claude-")  # type: ignore[union-attr]


def progress_line(stats: WorkerStats) -> str:
    line = f"processed {stats.processed}, failed {stats.failed}"
    if stats.receive_failures:
        line += f", receive failures {stats.receive_failures}"
    if stats.last_error:
        line += f", last error: {stats.last_error}"
    return line


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event):
    """Set ``stop`` on SIGINT/SIGTERM (only possible in the main thread)."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread (e.g. under a test runner): stop via the event only
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def join_worker(
    options: JoinOptions,
    url: str,
    token: str,
    report: Callable[[str], None],
    stop: asyncio.Event | None = None,
) -> WorkerStats:
    """Run a worker in the room until ``stop`` is set (or a signal), ``max_messages`` are
    handled, or the queue is idle with ``until_idle``. Reports each change of progress."""
    stop = stop or asyncio.Event()
    async with RoomClient(url, options.room, token) as room:
        rules = [*options.rules, *await load_room_rules(room, options.room_rules)]
        worker = Worker(
            queue=options.queue,
            name=options.agent_name,
            requires=[RequiredStorage()] if options.require_storage else [],
            llm_adapter=build_adapter(options, url),
            rules=rules,
            max_messages=options.max_messages,
            stop_when_idle=options.until_idle,
        )
        with stop_on_signals(stop):
            await worker.start(room)
            # Reported once Ctrl-C/SIGTERM are handled, so a caller may signal right after.
            report(f"worker {options.agent_name!r} joined room {options.room!r}, "
                   f"queue {options.queue!r}")
            await _report_until_done(worker, stop, report)
            await worker.stop()
        report(f"stopped: {progress_line(worker.stats)}")
        return worker.stats


async def _report_until_done(
    worker: Worker, stop: asyncio.Event, report: Callable[[str], None]
) -> None:
    shown = ""
    finished = asyncio.ensure_future(worker.wait())
    stopping = asyncio.ensure_future(stop.wait())
    try:
        while not (finished.done() or stopping.done()):
            changed = asyncio.ensure_future(
                worker.wait_for(lambda s, last=shown: progress_line(s) != last, timeout=3600)
            )
            await asyncio.wait({finished, stopping, changed}, return_when="FIRST_COMPLETED")
            changed.cancel()
            line = progress_line(worker.stats)
            if line != shown and (worker.stats.handled or worker.stats.last_error):
                report(line)
            shown = line
    finally:
        finished.cancel()
        stopping.cancel()


async def run_join(options: JoinOptions, url: str, token: str,
                   report: Callable[[str], None]) -> int:
    """The exit code: 0 after a clean stop, 1 if the room could not be joined or closed."""
    try:
        stats = await join_worker(options, url, token, report)
    except RoomError as error:
        report(f"error: {error}")
        return 1
    return 1 if stats.last_error and stats.last_error.startswith("room closed") else 0
