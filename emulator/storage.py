"""Room storage semantics: files by canonical path, folders implied by their files."""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from localmesh.emulator.blobs import BlobReader
from localmesh.emulator.errors import (
    INVALID_REQUEST,
    OPERATION_FAILED,
    STORAGE_ALREADY_EXISTS,
    STORAGE_INVALID_PATH,
    STORAGE_NOT_FOUND,
    STORAGE_RECURSIVE_REQUIRED,
    RoomError,
)
from localmesh.emulator.limits import Limits
from localmesh.emulator.paths import InvalidPath, basename, normalize_path, parent_of
from localmesh.emulator.store import FileRow, Store, StoreFailed

DEFAULT_MAX_FILE_BYTES = Limits.max_file_bytes  # an upload over this is refused before it is stored


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
    """Files of every room. Each change checks and acts without awaiting in between (the
    store runs statements at once, on the loop's thread), so two changes never interleave;
    it then waits for its commit. File contents stream through blob files (``blobs.py``)."""

    def __init__(
        self, store: Store, *, now: Callable[[], str] = utc_now,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    ) -> None:
        self._store = store
        self._now = now
        self.max_file_bytes = max_file_bytes

    def _is_folder(self, room: str, path: str) -> bool:
        return path == "" or self._store.has_files_under_now(room, path)

    def _stat(self, room: str, path: str) -> Entry | None:
        row = self._store.file_now(room, path)
        if row is not None:
            return _file_entry(row)
        if self._is_folder(room, path):
            return Entry(basename(path), True)
        return None

    async def stat(self, room: str, path: str) -> Entry | None:
        return self._stat(room, path)

    async def list(self, room: str, folder: str) -> list[Entry]:
        """Direct children of ``folder``; a missing folder lists as empty."""
        prefix = folder + "/" if folder else ""
        entries: dict[str, Entry] = {}
        for row in self._store.files_under_now(room, folder):
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

    def _check_writable(self, room: str, path: str, overwrite: bool) -> None:
        if self._store.has_files_under_now(room, path):
            raise RoomError(STORAGE_ALREADY_EXISTS, f"{path!r} is a folder")
        parent = parent_of(path)
        while parent:
            if self._store.file_now(room, parent) is not None:
                raise RoomError(STORAGE_INVALID_PATH, f"{parent!r} is a file, not a folder")
            parent = parent_of(parent)
        if not overwrite and self._store.file_now(room, path) is not None:
            raise RoomError(STORAGE_ALREADY_EXISTS, f"file {path!r} already exists")

    async def check_writable(self, room: str, path: str, overwrite: bool) -> None:
        """Refuse what ``write`` would refuse (uploads call it before their bytes stream)."""
        self._check_writable(room, path, overwrite)

    def check_size(self, size: int) -> None:
        """Refuse a file of ``size`` bytes (announced, or received so far) over the limit."""
        if size > self.max_file_bytes:
            raise RoomError(
                INVALID_REQUEST,
                f"a file of {size} bytes or more is over the {self.max_file_bytes}-byte limit"
                " (max_file_bytes)",
            )

    def begin_upload(
        self, room: str, path: str, mime_type: str, *, overwrite: bool, size: int | None = None
    ) -> Upload:
        """Start writing ``path``: refused now (before any byte is stored) if it cannot be
        written or its announced ``size`` is over the limit."""
        self._check_writable(room, path, overwrite)
        if size is not None:
            self.check_size(size)
        return Upload(self, room, path, mime_type, overwrite, size)

    async def write(
        self, room: str, path: str, data: bytes, mime_type: str, *, overwrite: bool
    ) -> None:
        upload = self.begin_upload(room, path, mime_type, overwrite=overwrite, size=len(data))
        try:
            await upload.write(data)
        except BaseException:
            upload.abort()
            raise
        await upload.commit()

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
        entry = self._stat(source_room, source)
        if entry is None:
            raise RoomError(STORAGE_NOT_FOUND, f"{source!r} was not found")
        if entry.is_folder:
            prefix = source + "/" if source else ""
            rows = self._store.files_under_now(source_room, source)
            plan = [(row.path, _join(destination, row.path[len(prefix):])) for row in rows]
        else:
            if not destination:
                raise RoomError(STORAGE_INVALID_PATH, "the room root is a folder, not a file path")
            plan = [(source, destination)]
        for _, target in plan:
            self._check_writable(room, target, overwrite)
        for origin, target in plan:
            # Streamed blob to blob (each commit checks its target again).
            row, reader = self.open_file(source_room, origin)
            with reader:
                upload = self.begin_upload(room, target, row.mime_type, overwrite=overwrite,
                                           size=reader.size)
                try:
                    async for block in reader.blocks():
                        await upload.write(block)
                except BaseException:
                    upload.abort()
                    raise
            await upload.commit()
        return [target for _, target in plan]

    async def require_file(self, room: str, path: str) -> FileRow:
        """The file at ``path`` (not its bytes); 3001 if there is no file there."""
        row = self._store.file_now(room, path)
        if row is None:
            raise _file_not_found(path)
        return row

    def open_file(self, room: str, path: str) -> tuple[FileRow, BlobReader]:
        """The file's row and its bytes, open for reading: the version there now, whatever
        happens to the path meanwhile. Nothing is read until asked. Close the reader."""
        row = self._store.file_now(room, path)
        if row is None:
            raise _file_not_found(path)
        try:
            return row, self._store.blobs.open(row.blob)
        except FileNotFoundError:
            raise RoomError(OPERATION_FAILED, f"the contents of {path!r} are missing") from None

    async def read(self, room: str, path: str) -> tuple[FileRow, bytes]:
        """A whole file (small files; streams use ``open_file``)."""
        row, reader = self.open_file(room, path)
        with reader:
            return row, await reader.read_all()

    async def delete(self, room: str, path: str, *, recursive: bool) -> None:
        if self._store.file_now(room, path) is None:
            if not path or not self._is_folder(room, path):
                raise RoomError(STORAGE_NOT_FOUND, f"{path!r} was not found")
            if not recursive:
                raise RoomError(
                    STORAGE_RECURSIVE_REQUIRED,
                    f"{path!r} is a folder: delete it with recursive=true",
                )
        await self._store.delete_tree(room, path)

    async def move(self, room: str, source: str, destination: str, *, overwrite: bool) -> None:
        if source == destination:
            return
        if not source or not destination:
            raise RoomError(STORAGE_INVALID_PATH, "the room root cannot be moved or replaced")
        if destination.startswith(source + "/"):
            raise RoomError(STORAGE_INVALID_PATH, f"cannot move {source!r} into itself")
        if self._stat(room, source) is None:
            raise RoomError(STORAGE_NOT_FOUND, f"{source!r} was not found")
        if self._stat(room, destination) is not None:
            if not overwrite:
                raise RoomError(STORAGE_ALREADY_EXISTS, f"{destination!r} already exists")
            self._store.delete_tree(room, destination)
        await self._store.move_tree(room, source, destination, self._now())


class Upload:
    """One file being written: bytes go to a new blob as they arrive; ``commit`` points the
    path at it (checked again then: the room may have changed while the bytes streamed)."""

    def __init__(self, storage: Storage, room: str, path: str, mime_type: str,
                 overwrite: bool, size: int | None) -> None:
        self._storage = storage
        self.room = room
        self.path = path
        self.mime_type = mime_type
        self.overwrite = overwrite
        self.size = size
        self._blob = storage._store.blobs.create()

    @property
    def received(self) -> int:
        return self._blob.size

    async def write(self, data: bytes) -> None:
        self._storage.check_size(self._blob.size + len(data))
        try:
            await self._blob.write(data)
        except OSError as error:
            if error.errno == errno.ENOSPC:  # as SQLite says it, so a full disk is one case
                raise StoreFailed(f"database or disk is full (storing {self.path!r})") from None
            raise RoomError(OPERATION_FAILED, f"could not store {self.path!r}: {error}") from None

    async def commit(self) -> None:
        """Make the written bytes the file at ``path``; the upload is over either way."""
        blob = self._blob
        blob.close()
        storage, store = self._storage, self._storage._store
        try:
            storage._check_writable(self.room, self.path, self.overwrite)
            committed = store.put_file(
                self.room, self.path, blob.name, blob.size, self.mime_type, storage._now())
        except BaseException:
            blob.discard()
            raise
        await committed

    def abort(self) -> None:
        self._blob.discard()
