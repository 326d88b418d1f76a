"""The room's ``services`` toolkit: what ``meshagent room service list|describe|restart`` call.

``list`` answers ``{"services_json": [spec as a JSON string...], "service_states": [...]}``
for the room's services and the project's; ``restart {service_id}`` restarts the one
running in the caller's room.
"""

from __future__ import annotations

import json

from localmesh.protocol.wire import Content, empty_content, json_content

from ..calls import Call, Handler
from ..errors import INVALID_REQUEST, NOT_FOUND, RoomError
from .supervisor import Supervisor


class ServicesToolkit:
    name = "services"

    def __init__(self, supervisor: Supervisor) -> None:
        self._supervisor = supervisor

    def handlers(self) -> dict[str, Handler]:
        return {"list": self.list, "restart": self.restart}

    async def list(self, call: Call) -> Content:
        specs = self._supervisor.services_in(call.room)
        return json_content({
            "services_json": [json.dumps(spec.to_json()) for spec in specs],
            "service_states": [self._supervisor.state_of(call.room, spec.id or "") for spec in specs],
        })

    async def restart(self, call: Call) -> Content:
        service_id = call.json_arguments().get("service_id")
        if not isinstance(service_id, str) or not service_id:
            raise RoomError(INVALID_REQUEST, "services.restart needs a 'service_id' string")
        runner = self._supervisor.runner(call.room, service_id)
        if runner is None:
            known = self._supervisor.find(call.room, service_id)
            why = "is not running (disabled)" if known else "does not exist"
            raise RoomError(NOT_FOUND, f"service {service_id!r} {why} in room {call.room!r}")
        runner.restart()
        return empty_content()
