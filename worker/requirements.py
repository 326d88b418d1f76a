"""What a Worker ``requires``: toolkits resolved against the room for each message."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from localmesh.protocol.error_codes import NOT_FOUND
from localmesh.worker.errors import RoomError
from localmesh.worker.tools import StorageToolkit, Tool, Toolkit

if TYPE_CHECKING:
    from localmesh.worker.room import RoomClient


class Requirement(Protocol):
    async def resolve(self, room: RoomClient) -> Toolkit:
        """The toolkit this requirement provides in ``room``."""
        ...


@dataclass(frozen=True)
class RequiredStorage:
    """The room's storage as the ``storage`` toolkit (what ``--require-storage`` adds)."""

    read_only: bool = False

    async def resolve(self, room: RoomClient) -> Toolkit:
        return StorageToolkit(room, read_only=self.read_only)


@dataclass(frozen=True)
class RequiredToolkit:
    """A toolkit another participant registered in the room, called through the room.

    ``tools`` limits which of its tools the model sees.
    """

    name: str
    tools: tuple[str, ...] | None = None

    async def resolve(self, room: RoomClient) -> Toolkit:
        listing = await room.list_toolkits()
        if self.name not in listing:
            raise RoomError(f"the room has no toolkit named {self.name!r}", NOT_FOUND)
        return remote_toolkit(room, self.name, listing[self.name], self.tools)


def remote_toolkit(
    room: RoomClient, name: str, description: dict[str, Any], only: tuple[str, ...] | None = None
) -> Toolkit:
    participant_id = description.get("participant_id")
    tools = []
    for tool_name, spec in (description.get("tools") or {}).items():
        if only is not None and tool_name not in only:
            continue
        schema = spec.get("input_schema") or (spec.get("input_spec") or {}).get("schema") or {
            "type": "object", "additionalProperties": False, "required": [], "properties": {},
        }

        async def call(_tool: str = tool_name, **arguments: Any) -> Any:
            return await room.invoke(name, _tool, arguments, participant_id=participant_id)

        tools.append(Tool(
            name=tool_name,
            description=str(spec.get("description") or ""),
            parameters=schema,
            function=call,
            title=str(spec.get("title") or tool_name),
            strict=bool(spec.get("strict", False)),
        ))
    return Toolkit(
        name=name,
        tools=tools,
        title=str(description.get("title") or name),
        description=str(description.get("description") or ""),
    )
