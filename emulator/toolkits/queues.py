"""The ``queues`` toolkit on the wire: arguments in, grant checks, queue model, contents out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from localmesh.emulator.calls import Call, Handler, Immediate, NowHandler
from localmesh.emulator.errors import INVALID_REQUEST, PERMISSION_DENIED, RoomError
from localmesh.emulator.queues import Deliver, Queues, Taken
from localmesh.protocol.grants import QueuesGrant
from localmesh.protocol.wire import (
    Content,
    empty_content,
    is_valid_unicode,
    json_content,
    pack_encoded,
)


def _queue_name(args: dict[str, Any]) -> str:
    name = args.get("name")
    if not isinstance(name, str) or not name:
        raise RoomError(INVALID_REQUEST, "queue name must be a non-empty string")
    if not is_valid_unicode(name):
        raise RoomError(INVALID_REQUEST, f"queue name {name!r} is not valid Unicode (a lone surrogate)")
    return name


def _flag(args: dict[str, Any], key: str, default: bool) -> bool:
    value = args.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise RoomError(INVALID_REQUEST, f"{key!r} must be true or false, not {value!r}")
    return value


def _deny(call: Call, what: str) -> RoomError:
    return RoomError(
        PERMISSION_DENIED,
        f"participant {call.participant.name!r} is not granted {what} (api.queues grant)",
    )


def _grant(call: Call) -> QueuesGrant:
    grant = call.participant.api.queues
    assert grant is not None, "the session checks the api.queues section before calling"
    return grant


class QueuedMessage:
    """The reply to a receive, built around the message's stored JSON text as it is: the
    message is decoded once (when it was sent), never decoded and encoded again here."""

    __slots__ = ("_envelope",)

    def __init__(self, body: str) -> None:
        # A JSON string goes back as text content, anything else as json content, as the SDK
        # sends them. The stored text is JSON, so it drops into the header as it is.
        kind = "text" if body.startswith('"') else "json"
        self._envelope = pack_encoded(f'{{"type":"{kind}","{kind}":{body}}}'.encode())

    def pack(self) -> bytes:
        return self._envelope


# What the toolkit tells the timeline: (room key, kind, participant, queue, detail=message id).
Record = Callable[..., None]
WindowOf = Callable[[str], float | None]


def _ignore(*args: Any, **kwargs: Any) -> None:
    pass


class QueuesToolkit:
    name = "queues"

    def __init__(
        self, queues: Queues, record: Record = _ignore, window_of: WindowOf = lambda room: None
    ) -> None:
        self._queues = queues
        self._record = record
        self._window_of = window_of  # a room's long-poll window, if its project set its own

    def handlers(self) -> dict[str, Handler]:
        return {
            "list": self.list, "open": self.open, "send": self.send,
            "receive": self.receive, "drain": self.drain, "close": self.close,
        }

    async def list(self, call: Call) -> Content:
        if not _grant(call).list:
            raise _deny(call, "listing queues")
        queues = await self._queues.list(call.room)
        return json_content({"queues": [{"name": n, "size": s} for n, s in queues]})

    async def open(self, call: Call) -> Content:
        name = _queue_name(call.json_arguments())
        grant = _grant(call)
        if not (grant.can_send(name) or grant.can_receive(name)):
            raise _deny(call, f"queue {name!r}")
        await self._queues.open(call.room, name)
        return empty_content()

    def handlers_now(self) -> dict[str, NowHandler]:
        """The calls answered without a task when they can be (see ``calls.NowHandler``)."""
        return {"send": self.send_now, "receive": self.receive_now}

    def _checked_send(self, call: Call) -> tuple[str, dict[str, Any]]:
        args = call.json_arguments()
        name = _queue_name(args)
        if not _grant(call).can_send(name):
            raise _deny(call, f"send on queue {name!r}")
        if "message" not in args:
            raise RoomError(INVALID_REQUEST, "queues.send needs a 'message'")
        return name, args

    def _accepted(self, call: Call, name: str) -> Callable[[int], None]:
        return lambda message_id: self._record(
            call.room, "queue.send", call.participant.name, name, detail=message_id)

    async def send(self, call: Call) -> Content:
        name, args = self._checked_send(call)
        await self._queues.send(call.room, name, args["message"], create=_flag(args, "create", True),
                                accepted=self._accepted(call, name))
        return empty_content()

    def send_now(self, call: Call) -> Immediate:
        name, args = self._checked_send(call)
        _, committed = self._queues.send_now(
            call.room, name, args["message"], create=_flag(args, "create", True),
            accepted=self._accepted(call, name))
        return Immediate(empty_content(), committed)

    def _checked_receive(self, call: Call) -> tuple[str, bool, bool]:
        args = call.json_arguments()
        name = _queue_name(args)
        if not _grant(call).can_receive(name):
            raise _deny(call, f"receive on queue {name!r}")
        return name, _flag(args, "wait", True), _flag(args, "create", True)

    async def receive(self, call: Call) -> Content:
        name, wait, create = self._checked_receive(call)
        if wait:
            call.detach()  # a long-poll mostly waits: it must not hold the connection's slots
        taken = await self._queues.take(
            call.room, name, create=create, wait=wait, window=self._window_of(call.room),
            # Answered as a send hands it a message (no wake-up of this task first), unless
            # a drop fault counts this reply's frames.
            deliver=self._delivering(call, name) if wait and call.budget is None else None,
        )
        if taken is None:
            return empty_content()
        if taken.delivered:
            return None
        try:
            await call.respond(QueuedMessage(taken.body))
        except BaseException:
            # The reply did not leave (the connection is gone): the receiver takes nothing.
            self._queues.put_back_soon(call.room, name, taken)
            raise
        self._record(call.room, "queue.deliver", call.participant.name, name, detail=taken.id)
        return None

    def _delivering(self, call: Call, name: str) -> Deliver:
        def deliver(taken: Taken) -> bool:
            if not call.peer.reply_now(call.message_id, QueuedMessage(taken.body)):
                return False
            self._record(call.room, "queue.deliver", call.participant.name, name, detail=taken.id)
            return True
        return deliver

    def receive_now(self, call: Call) -> Immediate | None:
        """A message in line now is answered at once; anything else (an empty queue, one to
        create, a long poll) takes the task path."""
        name, _, _ = self._checked_receive(call)
        room = call.room
        taken = self._queues.take_now(room, name)
        if taken is None:
            return None
        return Immediate(
            QueuedMessage(taken.body), taken.removed,
            after_commit=lambda: self._queues.removal_settled(room, name, taken),
            delivered=lambda: self._record(room, "queue.deliver", call.participant.name, name,
                                           detail=taken.id),
            # Not delivered (the connection is gone): the message goes back to its place.
            undelivered=lambda: self._queues.put_back_soon(room, name, taken),
        )

    async def drain(self, call: Call) -> Content:
        name = _queue_name(call.json_arguments())
        if not _grant(call).can_receive(name):
            raise _deny(call, f"receive on queue {name!r}")
        await self._queues.drain(call.room, name)
        return empty_content()

    async def close(self, call: Call) -> Content:
        name = _queue_name(call.json_arguments())
        grant = _grant(call)
        if not (grant.can_send(name) and grant.can_receive(name)):
            raise _deny(call, f"send and receive on queue {name!r}")
        await self._queues.close(call.room, name)
        return empty_content()
