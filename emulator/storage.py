"""Room storage semantics: files by canonical path, folders implied by their files."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from localmesh.emulator.errors import (
    STORAGE_ALREADY_EXISTS,
    STORAGE_INVALID_PATH,
    STORAGE_NOT_FOUND,
    STORAGE_RECURSIVE_REQUIRED,
    RoomError,
)
from localmesh.emulator.paths import InvalidPath, basename, normalize_path, parent_of
from localmesh.emulator.store import FileRow, Store


def utc_now() -> str:
    return datetime.now(UTC).isoformat()


def canonical(path: Any) -> str:
    """The canonical form of a request path, or a 3004 error saying what is wrong."""
    try:
        return normalize_path(path)
    except InvalidPath as error:
        raise RoomError(STORAGE_INVALID_PATH, str(error)) from None


def canonical_file(path: Any) -> str:
    name = canonical(path)
    if not name:
        raise RoomError(STORAGE_INVALID_PATH, "the room root is a folder, not a file path")
    return name


@dataclass(frozen=True)
class Entry:
    name: str
    is_folder: bool
    size: int | None = None
    created_at: str | None = None
    updated_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "is_folder": self.is_folder}
        if not self.is_folder:
            data.update(size=self.size, created_at=self.created_at, updated_at=self.updated_at)
        return data


def _file_not_found(path: str) -> RoomError:
    return RoomError(STORAGE_NOT_FOUND, f"file {path!r} was not found")


def _join(folder: str, rest: str) -> str:
    return f"{folder}/{rest}" if folder else rest


def _file_entry(row: FileRow) -> Entry:
    return Entry(basename(row.path), False, row.size, row.created_at, row.updated_at)


class Storage:
    def __init__(self, store: Store, *, now: Callable[[], str] = utc_now) -> None:
        self._store = store
        self._now = now
        # Each change checks, then acts, in several statements: one change per room at a time,
        # or two moves onto one path collide in SQLite and two creates both "succeed".
        self._changing: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def _is_folder(self, room: str, path: str) -> bool:
        return path == "" or await self._store.has_files_under(room, path)

    async def stat(self, room: str, path: str) -> Entry | None:
        row = await self._store.file(room, path)
        if row is not None:
            return _file_entry(row)
        if await self._is_folder(room, path):
            return Entry(basename(path), True)
        return None

    async def list(self, room: str, folder: str) -> list[Entry]:
        """Direct children of ``folder``; a missing folder lists as empty."""
        prefix = folder + "/" if folder else ""
        entries: dict[str, Entry] = {}
        for row in await self._store.files_under(room, folder):
            rest = row.path[len(prefix):]
            child, slash, _ = rest.partition("/")
            if slash:
                entries.setdefault(child, Entry(child, True))
            else:
                entries[child] = _file_entry(row)
        return list(entries.values())

    async def summary(self, room: str) -> tuple[int, int, str | None]:
        """``(files, total bytes, latest change)`` of a room, without reading any file."""
        return await self._store.files_summary(room)

    async def check_writable(self, room: str, path: str, overwrite: bool) -> None:
        """Refuse what ``write`` would refuse (uploads call it before their bytes stream)."""
        if await self._store.has_files_under(room, path):
            raise RoomError(STORAGE_ALREADY_EXISTS, f"{path!r} is a folder")
        parent = parent_of(path)
        while parent:
            if await self._store.file(room, parent) is not None:
                raise RoomError(STORAGE_INVALID_PATH, f"{parent!r} is a file, not a folder")
            parent = parent_of(parent)
        if not overwrite and await self._store.file(room, path) is not None:
            raise RoomError(STORAGE_ALREADY_EXISTS, f"file {path!r} already exists")

    async def write(
        self, room: str, path: str, data: bytes, mime_type: str, *, overwrite: bool
    ) -> None:
        async with self._changing[room]:
            await self.check_writable(room, path, overwrite)
            await self._store.write_file(room, path, data, mime_type, self._now())

    async def make_folder(self, room: str, path: str) -> None:
        """Check that ``path`` can be a folder. Folders are implied by their files, so there
        is nothing to store: an empty folder made here lists as absent until a file lands."""
        if not path:
            return
        if await self._store.file(room, path) is not None:
            raise RoomError(STORAGE_ALREADY_EXISTS, f"{path!r} is a file, not a folder")
        parent = parent_of(path)
        while parent:
            if await self._store.file(room, parent) is not None:
                raise RoomError(STORAGE_INVALID_PATH, f"{parent!r} is a file, not a folder")
            parent = parent_of(parent)

    async def copy(
        self, source_room: str, source: str, room: str, destination: str, *, overwrite: bool
    ) -> list[str]:
        """Copy a file, or every file under a folder, to ``destination`` in ``room``;
        returns the paths written. Nothing is written if any target is refused."""
        if source_room == room and (
            destination == source or destination.startswith(source + "/") or not source
        ):
            raise RoomError(STORAGE_INVALID_PATH, f"cannot copy {source!r} into itself")
        entry = await self.stat(source_room, source)
        if entry is None:
            raise RoomError(STORAGE_NOT_FOUND, f"{source!r} was not found")
        if entry.is_folder:
            prefix = source + "/" if source else ""
            rows = await self._store.files_under(source_room, source)
            plan = [(row.path, _join(destination, row.path[len(prefix):])) for row in rows]
        else:
            if not destination:
                raise RoomError(STORAGE_INVALID_PATH, "the room root is a folder, not a file path")
            plan = [(source, destination)]
        async with self._changing[room]:
            for _, target in plan:
                await self.check_writable(room, target, overwrite)
            for origin, target in plan:
                row, data = await self.read(source_room, origin)
                await self._store.write_file(room, target, data, row.mime_type, self._now())
        return [target for _, target in plan]

    async def require_file(self, room: str, path: str) -> FileRow:
        """The file at ``path`` (not its bytes); 3001 if there is no file there."""
        row = await self._store.file(room, path)
        if row is None:
            raise _file_not_found(path)
        return row

    async def read(self, room: str, path: str) -> tuple[FileRow, bytes]:
        found = await self._store.read_file(room, path)
        if found is None:
            raise _file_not_found(path)
        return found

    async def delete(self, room: str, path: str, *, recursive: bool) -> None:
        async with self._changing[room]:
            await self._delete(room, path, recursive=recursive)

    async def _delete(self, room: str, path: str, *, recursive: bool) -> None:
        if await self._store.file(room, path) is not None:
            await self._store.delete_tree(room, path)  # a file has nothing below it
            return
        if not path or not await self._is_folder(room, path):
            raise RoomError(STORAGE_NOT_FOUND, f"{path!r} was not found")
        if not recursive:
            raise RoomError(
                STORAGE_RECURSIVE_REQUIRED, f"{path!r} is a folder: delete it with recursive=true"
            )
        await self._store.delete_tree(room, path)

    async def move(self, room: str, source: str, destination: str, *, overwrite: bool) -> None:
        async with self._changing[room]:
            await self._move(room, source, destination, overwrite=overwrite)

    async def _move(self, room: str, source: str, destination: str, *, overwrite: bool) -> None:
        if source == destination:
            return
        if not source or not destination:
            raise RoomError(STORAGE_INVALID_PATH, "the room root cannot be moved or replaced")
        if destination.startswith(source + "/"):
            raise RoomError(STORAGE_INVALID_PATH, f"cannot move {source!r} into itself")
        if await self.stat(room, source) is None:
            raise RoomError(STORAGE_NOT_FOUND, f"{source!r} was not found")
        if await self.stat(room, destination) is not None:
            if not overwrite:
                raise RoomError(STORAGE_ALREADY_EXISTS, f"{destination!r} already exists")
            await self._store.delete_tree(room, destination)
        await self._store.move_tree(room, source, destination, self._now())
