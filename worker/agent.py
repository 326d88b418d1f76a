"""``Worker``: a queue-driven agent. Each message becomes one LLM task with tools.

The loop long-polls ``queues.receive(create=True, wait=True)``. Each message gets a fresh
chat context with the worker's rules and its toolkits (local ones plus those resolved
from ``requires``), then ``process_message`` runs LLM turns and tool calls to a final
answer. A failing message is logged and the loop moves on; a failing receive backs off
(capped, jittered, reset by the next success).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from localmesh.worker.backoff import Backoff
from localmesh.worker.context import ChatContext
from localmesh.worker.errors import RoomClosed
from localmesh.worker.llm import LLMAdapter
from localmesh.worker.requirements import Requirement
from localmesh.worker.room import RoomClient
from localmesh.worker.tool_results import ToolResponseAdapter
from localmesh.worker.tools import Toolkit

logger = logging.getLogger("localmesh.worker")

Sleep = Callable[[float], Awaitable[None]]


@dataclass
class WorkerStats:
    """Progress, for the CLI and for tests that wait on it."""

    received: int = 0  # messages taken from the queue (handled + the one in flight)
    processed: int = 0  # messages whose processing finished without an error
    failed: int = 0  # messages whose processing raised
    receive_failures: int = 0  # failed receives (each one backs off)
    consecutive_receive_failures: int = 0
    last_error: str | None = None
    last_delay: float | None = None  # the last receive backoff delay
    in_flight: bool = False
    started_at: float = field(default_factory=time.monotonic)

    @property
    def handled(self) -> int:
        return self.processed + self.failed


class Worker:
    """Processes the messages of one room queue with an LLM and tools.

    Subclass it and override a hook to change one step; see ``docs/worker.md``.
    ``backoff``/``sleep`` make the receive backoff deterministic in tests.
    ``max_messages`` ends the loop after that many messages; ``stop_when_idle`` ends it
    at the first empty receive (it polls with ``wait=False``): both are for scripts.
    """

    def __init__(
        self,
        *,
        queue: str,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        requires: list[Requirement] | None = None,
        llm_adapter: LLMAdapter | None = None,
        tool_adapter: ToolResponseAdapter | None = None,
        toolkits: list[Toolkit] | None = None,
        rules: list[str] | None = None,
        backoff: Backoff | None = None,
        sleep: Sleep = asyncio.sleep,
        stop_timeout: float = 30.0,
        max_messages: int | None = None,
        stop_when_idle: bool = False,
    ) -> None:
        if not queue:
            raise ValueError("a Worker needs a queue name")
        self.queue = queue
        self.name = name or "worker"
        self.title = title or self.name
        self.description = description or ""
        self.requires = list(requires or [])
        self.llm_adapter = llm_adapter
        self.tool_adapter = tool_adapter
        self.toolkits = list(toolkits or [])
        self.rules = list(rules or [])
        self.backoff = backoff or Backoff(base=0.1, cap=30.0)
        self.stop_timeout = stop_timeout
        self.max_messages = max_messages
        self.stop_when_idle = stop_when_idle
        self.stats = WorkerStats()
        self._sleep = sleep
        self._room: RoomClient | None = None
        self._main: asyncio.Task[None] | None = None
        self._receive: asyncio.Task[Any] | None = None
        self._stopping = asyncio.Event()
        self._changed = asyncio.Condition()
        self._ended = False  # set as the loop ends, before waiters are told

    # ------------------------------------------------------------ lifecycle

    @property
    def room(self) -> RoomClient:
        if self._room is None:
            raise RuntimeError("the worker is not started; call await worker.start(room)")
        return self._room

    @property
    def running(self) -> bool:
        """True from ``start()`` until the receive loop has ended."""
        return self._main is not None and not self._main.done() and not self._ended

    async def start(self, room: RoomClient) -> None:
        """Bind to ``room`` and start the receive loop in the background."""
        if self.running:
            raise RuntimeError("the worker is already running")
        self._room = room
        if self.llm_adapter is not None:
            self.llm_adapter = self.llm_adapter.with_runtime_token(room.token)
        self._stopping.clear()
        self._ended = False
        self._main = asyncio.create_task(self.run(room), name=f"worker-{self.name}")

    async def stop(self) -> None:
        """Take no new message; let the one in flight finish (up to ``stop_timeout``)."""
        self._stopping.set()
        if self._receive is not None and not self._receive.done():
            self._receive.cancel()  # the server re-queues a message handed to a gone receiver
        if self._main is None:
            return
        done, _ = await asyncio.wait({self._main}, timeout=self.stop_timeout)
        if not done:
            logger.warning("message still in flight after %.1f s; cancelling it", self.stop_timeout)
            self._main.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._main

    async def wait(self) -> None:
        """Return when the loop has ended (after ``stop()``, ``max_messages`` or idle)."""
        if self._main is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._main)

    async def wait_for(
        self, predicate: Callable[[WorkerStats], bool], timeout: float | None
    ) -> WorkerStats:
        """Wait until ``predicate(stats)`` holds; raises ``TimeoutError`` after ``timeout`` s
        (``None``: no limit of its own; use it under an outer ``asyncio.timeout``)."""
        async with asyncio.timeout(timeout):
            async with self._changed:
                await self._changed.wait_for(lambda: predicate(self.stats))
        return replace(self.stats)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # ------------------------------------------------------------ the loop

    async def run(self, room: RoomClient) -> None:
        """Receive and process messages until stopped."""
        self._room = room
        try:
            await self._loop(room)
        finally:
            self._ended = True
            await self._notify()

    async def _loop(self, room: RoomClient) -> None:
        while not self._stopping.is_set():
            try:
                self._receive = asyncio.create_task(self._take(room))
                message = await self._receive
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # the loop itself is being cancelled
                break  # only the pending long poll was cancelled, by stop()
            except RoomClosed as error:
                # Final: the client will never reconnect, so retrying cannot help.
                self.stats.last_error = f"room closed: {error}"
                logger.error("worker %r stops: %s", self.name, error)
                break
            except Exception as error:
                await self._receive_failed(error)
                continue
            self.backoff.reset()
            self.stats.consecutive_receive_failures = 0
            if message is None:
                if self.stop_when_idle:
                    break
                continue
            await self._handle(room, message)
            if self.max_messages is not None and self.stats.handled >= self.max_messages:
                break

    async def _take(self, room: RoomClient) -> Any:
        message = await room.queues.receive(self.queue, create=True, wait=not self.stop_when_idle)
        if message is not None:
            # Counted in the receive's own task step, as its reply is read: a reply read after
            # it on the same connection (run_until_drained's round trip) never sees it uncounted.
            self.stats.received += 1
        return message

    async def _receive_failed(self, error: Exception) -> None:
        delay = self.backoff.next_delay()
        self.stats.receive_failures += 1
        self.stats.consecutive_receive_failures += 1
        self.stats.last_error = f"receive failed: {error}"
        self.stats.last_delay = delay
        logger.warning("receive from %r failed (%s); retrying in %.2f s", self.queue, error, delay)
        await self._notify()
        await self._pause(delay)

    async def _pause(self, delay: float) -> None:
        """Sleep ``delay`` (with the injected sleep), but wake at once if stopped."""
        sleeper = asyncio.ensure_future(self._sleep(delay))
        stopper = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait({sleeper, stopper}, return_when="FIRST_COMPLETED")
        finally:
            sleeper.cancel()
            stopper.cancel()

    async def _handle(self, room: RoomClient, message: Any) -> None:
        self.stats.in_flight = True
        await self._notify()
        try:
            chat_context = await self.init_chat_context()
            toolkits = await _call_hook(self.get_message_toolkits, room=room, message=message)
            await _call_hook(
                self.process_message,
                chat_context=chat_context, room=room, message=message, toolkits=toolkits,
            )
            self.stats.processed += 1
        except Exception as error:
            self.stats.failed += 1
            self.stats.last_error = f"{type(error).__name__}: {error}"
            logger.exception("failed to process a message from %r", self.queue)
            await self._report(room, message, error)
        finally:
            self.stats.in_flight = False
            await self._notify()

    async def _report(self, room: RoomClient, message: Any, error: Exception) -> None:
        """Tell the room's developer log, best effort: the room may be the thing failing."""
        try:
            async with asyncio.timeout(5.0):
                await room.developer.log(
                    "worker.error",
                    {"worker": self.name, "queue": self.queue, "error": str(error),
                     "message": _summary(message)},
                )
        except Exception as log_error:
            logger.debug("could not send the error to the developer log: %s", log_error)

    # ------------------------------------------------------------ hooks

    async def get_rules(self) -> list[str]:
        return list(self.rules)

    async def init_chat_context(self) -> ChatContext:
        """A fresh context for one message, holding the rules."""
        context = self.llm_adapter.create_session() if self.llm_adapter else ChatContext()
        context.replace_rules(await self.get_rules())
        return context

    async def get_message_toolkits(
        self, *, message: Any, room: RoomClient | None = None
    ) -> list[Toolkit]:
        """Local toolkits (bound to the room, so ``StorageToolkit()`` needs no argument)
        plus the ones ``requires`` names, resolved for this message."""
        room = room or self.room
        required = [await requirement.resolve(room) for requirement in self.requires]
        return [*(toolkit.bound_to(room) for toolkit in self.toolkits), *required]

    def get_prompt_for_message(self, message: Any) -> str:
        """The ``prompt`` of the message if it has one, else the whole message as JSON."""
        if isinstance(message, dict) and isinstance(message.get("prompt"), str):
            return message["prompt"]
        if isinstance(message, str):
            return message
        return json.dumps(message)

    async def append_message_context(
        self, *, message: Any, chat_context: ChatContext, room: RoomClient | None = None
    ) -> None:
        """Put the task into the context; override to add e.g. a file from storage."""
        chat_context.append_user_message(self.get_prompt_for_message(message))

    async def process_message(
        self,
        *,
        chat_context: ChatContext,
        message: Any,
        toolkits: list[Toolkit],
        room: RoomClient | None = None,
    ) -> Any:
        """Run the LLM on the message until it answers; return the answer.

        ``room`` is optional (the worker's room): overrides may leave it out, as the
        MeshAgent docs' ``process_message(chat_context=, message=, toolkits=)`` does.
        """
        if self.llm_adapter is None:
            raise RuntimeError(
                "this worker has no llm_adapter; pass one or override process_message"
            )
        room = room or self.room
        await _call_hook(
            self.append_message_context, room=room, message=message, chat_context=chat_context
        )
        model = message.get("model") if isinstance(message, dict) else None
        return await self.llm_adapter.create_response(
            context=chat_context,
            toolkits=toolkits,
            model=model if isinstance(model, str) and model.strip() else None,
            tool_adapter=self.tool_adapter,
        )


async def _call_hook(hook: Callable[..., Awaitable[Any]], *, room: RoomClient, **arguments: Any) -> Any:
    """Call a hook, passing ``room`` only if it takes one: our hooks do, while overrides
    written for the MeshAgent SDK (which has no ``room`` argument) leave it out."""
    if _accepts(hook, "room"):
        arguments["room"] = room
    return await hook(**arguments)


def _accepts(function: Callable[..., Any], name: str) -> bool:
    parameters = inspect.signature(function).parameters.values()
    return any(p.name == name or p.kind is p.VAR_KEYWORD for p in parameters)


def _summary(message: Any) -> str:
    text = json.dumps(message, default=str)
    return text if len(text) <= 200 else text[:197] + "..."
