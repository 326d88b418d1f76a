"""A tool call in flight: what handlers receive, and how they answer or stream."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from localmesh.emulator.errors import INVALID_REQUEST, OPERATION_FAILED, RoomError
from localmesh.emulator.inflight import Slot, TooManyWaiting
from localmesh.protocol.wire import Content, control_open

if TYPE_CHECKING:
    from localmesh.emulator.frames import FrameBudget
    from localmesh.protocol.tokens import Participant


class CallPeer(Protocol):
    """The side of a session a call talks back through."""

    participant_id: str
    participant: Participant

    async def reply(
        self, message_id: int, content: Content, *, budget: FrameBudget | None = None
    ) -> None: ...
    def reply_now(self, message_id: int, content: Content) -> bool: ...
    async def send(
        self, type: str, header: dict[str, Any], payload: bytes = b"",
        *, budget: FrameBudget | None = None,
    ) -> None: ...


@dataclass(slots=True)
class Call:
    """One ``room.invoke_tool`` request, as a handler sees it."""

    message_id: int
    toolkit: str
    tool: str
    arguments: Content
    tool_call_id: str
    peer: CallPeer
    room: str
    # Request chunks of a streamed call (arguments = control open), in arrival order.
    inbound: asyncio.Queue[Content] | None = None
    # The call's claim on its connection's requests in flight (None outside a session).
    slot: Slot | None = None
    # The size of the request message (envelope JSON + payload): small arguments stay small.
    request_bytes: int | None = None
    opened: bool = field(default=False, init=False)
    # Set by a drop_reply fault: the connection is cut after this many frames of the reply.
    budget: FrameBudget | None = field(default=None, init=False)
    # For the timeline: what a streamed call was about (its json arguments say nothing), and
    # the error code a handler answered with inside its stream.
    note: dict[str, Any] | None = field(default=None, init=False)
    error_code: int | None = field(default=None, init=False)

    @property
    def participant(self) -> Participant:
        return self.peer.participant

    @property
    def summary_arguments(self) -> dict[str, Any] | None:
        """What the timeline shows of the arguments (a reference, summarised when read)."""
        if self.note is not None:
            return self.note
        header = self.arguments.header
        return header.get("json") if header["type"] == "json" else None

    @property
    def streamed(self) -> bool:
        return self.inbound is not None

    def detach(self) -> None:
        """This call is about to wait (a long-poll): let the connection run other calls."""
        if self.slot is None:
            return
        try:
            self.slot.detach()
        except TooManyWaiting as error:
            raise RoomError(OPERATION_FAILED, f"{self.toolkit}.{self.tool} refused: {error}") from None

    def json_arguments(self) -> dict[str, Any]:
        """The call's ``json`` arguments as a dict; a clear 1002 for anything else."""
        header = self.arguments.header
        kind = header["type"]
        if kind == "empty":
            return {}
        value = header.get("json")
        if kind != "json" or not isinstance(value, dict):
            raise RoomError(
                INVALID_REQUEST,
                f"{self.toolkit}.{self.tool} takes a json object argument, not {kind!r} content",
            )
        return value

    async def next_chunk(self, timeout: float | None = None) -> Content:
        """The next request chunk of a streamed call."""
        if self.inbound is None:
            raise RoomError(INVALID_REQUEST, f"{self.toolkit}.{self.tool} must be called as a stream")
        async with asyncio.timeout(timeout):
            return await self.inbound.get()

    async def respond(self, content: Content) -> None:
        """The call's one reply (or, for a stream, its opening)."""
        await self.peer.reply(self.message_id, content, budget=self.budget)

    async def open_stream(self) -> None:
        self.opened = True
        await self.respond(control_open())

    async def send_chunk(self, content: Content) -> None:
        await self.peer.send(
            "room.tool_call_response_chunk",
            {"tool_call_id": self.tool_call_id, "chunk": content.header},
            content.payload,
            budget=self.budget,
        )


Handler = Callable[[Call], Awaitable[Content | None]]


@dataclass(slots=True)
class Immediate:
    """A call answered without a task (``NowHandler``): its reply, and the commit it waits
    for (None: nothing to wait for). The hooks run in this order: ``after_commit`` once the
    commit is done, then ``delivered`` once the reply is queued for the client, or
    ``undelivered`` when it cannot be (the connection is gone)."""

    content: Content
    committed: asyncio.Future[None] | None = None
    after_commit: Callable[[], None] | None = None
    delivered: Callable[[], None] | None = None
    undelivered: Callable[[], None] | None = None


# Answers a call synchronously, in the callback that read it, when it can be answered from
# what is known now (None: it cannot, e.g. a receive that must wait; the task path runs it).
# Raises RoomError for a refusal, as a Handler would.
NowHandler = Callable[[Call], Immediate | None]
