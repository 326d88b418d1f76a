"""What the Studio shows and changes, read from a running emulator's state.

Each view of the page gets its data through one of these functions: they take the
``EmulatorState``, call the models' public methods (never SQL, never a toolkit), and return
plain JSON-ready values. So the routes stay thin, and a change in a model shows up here only.
A refusal is a ``StudioError`` with the HTTP status and a message a person can act on.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ...protocol.wire import guess_mime_type
from ..errors import (
    OPERATION_FAILED,
    QUEUE_NOT_FOUND,
    STORAGE_ALREADY_EXISTS,
    STORAGE_NOT_FOUND,
    RoomError,
)
from ..paths import basename
from ..storage import canonical, canonical_file
from .llm_view import conversations
from .services_view import services_summary

if TYPE_CHECKING:
    from ..state import EmulatorState

STUDIO_PARTICIPANT = "localmesh-studio"  # who the room's file events say made a Studio change
MAX_PAGE = 500
_ROOM_NAME_LIMIT = 128
_TEXT_TYPES = frozenset({
    "application/xml", "application/yaml", "application/x-yaml", "application/javascript",
    "application/toml", "application/x-sh", "application/sql", "application/x-ndjson",
})
_TEXT_SUFFIXES = (".txt", ".md", ".yaml", ".yml", ".toml", ".csv", ".log", ".py", ".js", ".ts",
                  ".html", ".css", ".xml", ".ini", ".cfg", ".sh", ".rst", ".jsonl")
_STATUS_OF_CODE = {QUEUE_NOT_FOUND: 404, STORAGE_NOT_FOUND: 404, STORAGE_ALREADY_EXISTS: 409}

__all__ = [
    "StudioError", "conversations", "create_room", "delete_file", "delete_queue", "drain_queue",
    "file_info", "list_folder", "list_rooms", "move_file", "participants", "peek_queue",
    "queues", "room_detail", "send_to_queue", "upload_file",
]


class StudioError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _from_room_error(error: RoomError) -> StudioError:
    return StudioError(_STATUS_OF_CODE.get(error.code, 400), error.message)


def check_room_name(room: str) -> str:
    """A room name is one URL segment: ``/rooms/{room}`` is how participants reach it."""
    room = room.strip()
    if not room or "/" in room or len(room) > _ROOM_NAME_LIMIT or any(ord(c) < 32 for c in room):
        raise StudioError(400, f"a room name is 1 to {_ROOM_NAME_LIMIT} characters, without '/'"
                               f" or control characters, not {room!r}")
    return room


def page_bounds(offset: int, limit: int) -> tuple[int, int]:
    return max(offset, 0), min(max(limit, 0), MAX_PAGE)


# ---------------------------------------------------------------- rooms


async def _room_names(state: EmulatorState) -> list[str]:
    # A room exists through what it holds (queues, files, a record made by "create room"),
    # who is in it, or what its LLM was asked.
    names = set(await state.store.room_names()) | set(state.rooms.active()) | set(state.llm.rooms())
    return sorted(names)


async def _room_summary(state: EmulatorState, room: str) -> dict[str, Any]:
    queue_list = await state.queues.list(room)
    files, size, _ = await state.storage.summary(room)
    return {
        "name": room,
        "participants": len(state.rooms.sessions(room)),
        "queues": len(queue_list),
        "messages": sum(length for _, length in queue_list),
        "files": files,
        "bytes": size,
        "llm_requests": len(state.llm.transcript(room)),
        "services": services_summary(state, room),
    }


async def list_rooms(state: EmulatorState) -> list[dict[str, Any]]:
    return [await _room_summary(state, room) for room in await _room_names(state)]


async def create_room(state: EmulatorState, room: str) -> dict[str, Any]:
    room = check_room_name(room)
    if room in await _room_names(state):
        raise StudioError(409, f"room {room!r} already exists")
    await state.store.create_room(room, datetime.now(UTC).isoformat())
    return await _room_summary(state, room)


def participants(state: EmulatorState, room: str) -> list[dict[str, Any]]:
    found = []
    for session in state.rooms.sessions(room):
        described = session.describe()
        found.append({**described, "name": session.participant.name})
    return sorted(found, key=lambda p: (p["name"], p["id"]))


async def room_detail(state: EmulatorState, room: str) -> dict[str, Any]:
    summary = await _room_summary(state, room)
    files, size, latest = await state.storage.summary(room)
    llm = conversations(state, room)
    return {
        **summary,
        "participants": participants(state, room),
        "queue_list": await queues(state, room),
        "storage": {"files": files, "bytes": size, "latest_change": latest},
        "llm": {"requests": llm["requests"], "unmatched": llm["unmatched"],
                "conversations": len(llm["conversations"])},
        "faults": len(faults(state, room)),
    }


# ---------------------------------------------------------------- queues


async def queues(state: EmulatorState, room: str) -> list[dict[str, Any]]:
    return [
        {"name": name, "size": size, "waiting": state.queues.waiting(room, name)}
        for name, size in await state.queues.list(room)
    ]


async def peek_queue(
    state: EmulatorState, room: str, queue: str, offset: int = 0, limit: int = 100
) -> dict[str, Any]:
    """A page of a queue's messages in line order, left in the queue."""
    offset, limit = page_bounds(offset, limit)
    try:
        messages = await state.queues.peek(room, queue, offset=offset, limit=limit)
    except RoomError as error:
        raise _from_room_error(error) from None
    size = dict(await state.queues.list(room)).get(queue, 0)
    return {
        "name": queue, "size": size, "waiting": state.queues.waiting(room, queue), "offset": offset,
        "messages": [
            {"id": message_id, "position": offset + index, "message": message}
            for index, (message_id, message) in enumerate(messages)
        ],
    }


def parse_message(text: str, max_bytes: int) -> Any:
    """The JSON value typed into the send form, or a 400 saying where it went wrong."""
    if len(text.encode()) > max_bytes:
        raise StudioError(400, f"the message is larger than this server's limit of {max_bytes} bytes")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise StudioError(
            400, f"the message is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})"
        ) from None


async def send_to_queue(state: EmulatorState, room: str, queue: str, text: str) -> dict[str, Any]:
    if not queue:
        raise StudioError(400, "a queue needs a name")
    message = parse_message(text, state.settings.limits.max_message_bytes)
    await state.queues.send(room, queue, message)
    return {"name": queue, "sent": message}


async def drain_queue(state: EmulatorState, room: str, queue: str) -> None:
    try:
        await state.queues.drain(room, queue)
    except RoomError as error:
        raise _from_room_error(error) from None


async def delete_queue(state: EmulatorState, room: str, queue: str) -> None:
    try:
        await state.queues.close(room, queue)
    except RoomError as error:
        raise _from_room_error(error) from None


# ---------------------------------------------------------------- storage


def _canonical(path: str, *, file: bool = False) -> str:
    try:
        return canonical_file(path) if file else canonical(path)
    except RoomError as error:
        raise _from_room_error(error) from None


def download_path(state: EmulatorState, room: str, path: str) -> str:
    """The signed link the room itself gives out (``storage.download_url``), relative to the
    server, so the page fetches it from whatever host name it was opened with."""
    return f"/_localmesh/download/{quote(room, safe='')}/{quote(path)}?sig={state.sign_download(room, path)}"


def view_kind(mime_type: str, name: str) -> str:
    """How the viewer shows a file: ``json``, ``text``, ``image`` or ``binary`` (download only)."""
    mime = (mime_type or guess_mime_type(name)).split(";")[0].strip().lower()
    lower = name.lower()
    if mime == "application/json" or lower.endswith(".json"):
        return "json"
    if mime.startswith("image/"):
        return "image"
    if mime.startswith("text/") or mime in _TEXT_TYPES or mime.endswith(("+json", "+xml")) \
            or lower.endswith(_TEXT_SUFFIXES):
        return "text"
    return "binary"


async def list_folder(state: EmulatorState, room: str, path: str) -> dict[str, Any]:
    folder = _canonical(path)
    entries = await state.storage.list(room, folder)
    prefix = f"{folder}/" if folder else ""
    items = [
        {**entry.to_json(), "path": prefix + entry.name}
        for entry in sorted(entries, key=lambda e: (not e.is_folder, e.name.lower(), e.name))
    ]
    return {"path": folder, "entries": items}


async def file_info(state: EmulatorState, room: str, path: str) -> dict[str, Any]:
    """A file's facts and the link to its bytes; a folder says so (and the page lists it)."""
    name = _canonical(path)
    entry = await state.storage.stat(room, name)
    if entry is None:
        raise StudioError(404, f"{name!r} was not found in room {room!r}")
    if entry.is_folder:
        return {"path": name, "is_folder": True}
    row = await state.storage.require_file(room, name)
    return {
        "path": name, "name": basename(name), "is_folder": False, "size": row.size,
        "mime_type": row.mime_type, "created_at": row.created_at, "updated_at": row.updated_at,
        "kind": view_kind(row.mime_type, basename(name)), "url": download_path(state, room, name),
    }


async def _file_event(state: EmulatorState, room: str, type: str, header: dict[str, Any]) -> None:
    # Participants hear about a Studio change as they would about another participant's.
    await state.rooms.broadcast(room, type, {**header, "participant_id": STUDIO_PARTICIPANT})


async def upload_file(
    state: EmulatorState, room: str, path: str, body: AsyncIterator[bytes], *,
    overwrite: bool, mime_type: str | None = None,
) -> dict[str, Any]:
    name = _canonical(path, file=True)
    try:
        await state.storage.check_writable(room, name, overwrite)  # before the bytes arrive
        data = bytearray()
        async for chunk in body:
            data += chunk
        mime = mime_type or guess_mime_type(basename(name))
        await state.storage.write(room, name, bytes(data), mime, overwrite=overwrite)
    except RoomError as error:
        raise _from_room_error(error) from None
    await _file_event(state, room, "storage.file.updated", {"path": name})
    return await file_info(state, room, name)


async def move_file(
    state: EmulatorState, room: str, source: str, destination: str, *, overwrite: bool = False
) -> None:
    source, destination = _canonical(source), _canonical(destination)
    try:
        await state.storage.move(room, source, destination, overwrite=overwrite)
    except RoomError as error:
        raise _from_room_error(error) from None
    await _file_event(state, room, "storage.file.moved",
                      {"source_path": source, "destination_path": destination})


async def delete_file(state: EmulatorState, room: str, path: str, *, recursive: bool = False) -> None:
    name = _canonical(path)
    try:
        await state.storage.delete(room, name, recursive=recursive)
    except RoomError as error:
        raise _from_room_error(error) from None
    await _file_event(state, room, "storage.file.deleted", {"path": name})


# ---------------------------------------------------------------- faults


def _fault_json(fault: Any) -> dict[str, Any]:
    return {
        "toolkit": fault.toolkit, "tool": fault.tool, "room": fault.room, "code": fault.code,
        "message": fault.message, "remaining": fault.remaining, "fired": fault.fired,
    }


def faults(state: EmulatorState, room: str | None = None) -> list[dict[str, Any]]:
    """Armed faults (of one room: those aimed at it and those aimed at every room)."""
    return [_fault_json(f) for f in state.faults.all() if room is None or f.room in (None, room)]


def arm_fault(state: EmulatorState, body: dict[str, Any], room: str | None = None) -> dict[str, Any]:
    """Arm a fault from the form: ``toolkit``, ``tool``, ``times`` (empty: every call),
    ``code`` and ``message``; aimed at ``room``, or at every room."""
    toolkit, tool = body.get("toolkit"), body.get("tool")
    if not isinstance(toolkit, str) or not toolkit or not isinstance(tool, str) or not tool:
        raise StudioError(400, "a fault needs the toolkit and the tool it fails, e.g. queues and receive")
    times, code = body.get("times"), body.get("code", OPERATION_FAILED)
    if times is not None and (not isinstance(times, int) or isinstance(times, bool) or times < 1):
        raise StudioError(400, "times is a whole number of calls, at least 1 (or empty: every call),"
                               f" not {times!r}")
    if not isinstance(code, int) or isinstance(code, bool):
        raise StudioError(400, f"code is a room error code such as {OPERATION_FAILED}, not {code!r}")
    message = body.get("message") or None
    if message is not None and not isinstance(message, str):
        raise StudioError(400, "message is text")
    state.faults.fail(toolkit, tool, times=times, room=room, code=code, message=message)
    return _fault_json(state.faults.all()[-1])


def clear_faults(state: EmulatorState, room: str | None = None) -> None:
    """Disarm every fault, or those aimed at ``room`` only."""
    state.faults.clear(None if room is None else (lambda fault: fault.room == room))
