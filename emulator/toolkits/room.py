"""The small toolkits a normal run touches: ``developer`` and ``messaging``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from localmesh.emulator.calls import Call, Handler
from localmesh.protocol.wire import Content, empty_content

logger = logging.getLogger("localmesh.room")

# (room, participant name, type, data) for each developer.log call
DeveloperLogSink = Callable[[str, str, str, dict[str, Any]], None]
ParticipantsOf = Callable[[str], list[dict[str, Any]]]


class DeveloperToolkit:
    name = "developer"

    def __init__(self, sink: DeveloperLogSink) -> None:
        self._sink = sink

    def handlers(self) -> dict[str, Handler]:
        return {"log": self.log}

    async def log(self, call: Call) -> Content:
        args = call.json_arguments()
        kind = str(args.get("type", "log"))
        data = args.get("data") if isinstance(args.get("data"), dict) else {}
        logger.info("developer.log room=%s from=%s %s %.500s", call.room, call.participant.name, kind, data)
        self._sink(call.room, call.participant.name, kind, data)
        return empty_content()


class MessagingToolkit:
    """Enough of messaging for ``room.messaging.enable()`` to come online."""

    name = "messaging"

    def __init__(self, participants_of: ParticipantsOf) -> None:
        self._participants_of = participants_of

    def handlers(self) -> dict[str, Handler]:
        return {"enable": self.enable, "disable": self.disable}

    async def enable(self, call: Call) -> Content:
        await call.respond(empty_content())
        others = [p for p in self._participants_of(call.room) if p["id"] != call.peer.participant_id]
        await call.peer.send("messaging.send", {
            "from_participant_id": call.peer.participant_id,
            "type": "messaging.enabled",
            "message": {"participants": others},
        })
        return None  # already answered: the reply must come before the enabled event

    async def disable(self, call: Call) -> Content:
        return empty_content()
