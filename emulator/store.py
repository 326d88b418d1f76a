"""SQLite persistence: the schema and the narrow set of queries the models need.

One aiosqlite connection in autocommit mode: every statement is its own committed
transaction, so a write that returned is on disk, and each queue operation is one
trip to the database thread (``execute_fetchall`` runs and fetches in one hop).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from .datadir import private_database

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS queues (
    room TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (room, name)
);
-- AUTOINCREMENT: ids are never reused, so a message put back keeps its place in line.
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    room TEXT NOT NULL,
    queue TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_in_line ON messages (room, queue, id);
-- Rooms made on purpose (the Studio's "create a room"); other rooms exist through their
-- queues and files, as in MeshAgent, where a room comes to be when someone joins it.
CREATE TABLE IF NOT EXISTS rooms (
    room TEXT PRIMARY KEY,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    room TEXT NOT NULL,
    path TEXT NOT NULL,
    data BLOB NOT NULL,
    size INTEGER NOT NULL,
    mime_type TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (room, path)
);
"""


@dataclass(frozen=True)
class FileRow:
    path: str
    size: int
    mime_type: str
    created_at: str
    updated_at: str


class Store:
    """The database of one emulator: keys, queues, messages and files of every room."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    @classmethod
    async def open(cls, data_dir: Path | None) -> Store:
        """Open (creating) ``data_dir/localmesh.db``; ``None`` keeps everything in memory."""
        if data_dir is None:
            target = ":memory:"
        else:
            target = str(private_database(data_dir))  # 0700 folder, 0600 file: it holds the key
        db = await aiosqlite.connect(target, isolation_level=None)
        if data_dir is not None:
            await db.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL is durable against process crashes, which is what a restart test needs.
            await db.execute("PRAGMA synchronous=NORMAL")
        await db.executescript(SCHEMA)
        return cls(db)

    async def close(self) -> None:
        await self._db.close()

    @property
    def connection(self) -> aiosqlite.Connection:
        """The one connection, for feature stores that keep their own tables (services)."""
        return self._db

    # ------------------------------------------------------------ keys

    async def api_keys(self) -> list[tuple[str, str, str]]:
        rows = await self._db.execute_fetchall(
            "SELECT key_id, project_id, secret FROM api_keys ORDER BY created_at"
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]

    async def add_api_key(self, key_id: str, project_id: str, secret: str, created_at: str) -> None:
        await self._db.execute(
            "INSERT INTO api_keys (key_id, project_id, secret, created_at) VALUES (?, ?, ?, ?)",
            (key_id, project_id, secret, created_at),
        )

    # ------------------------------------------------------------ queues

    async def all_queues(self) -> list[tuple[str, str]]:
        rows = await self._db.execute_fetchall("SELECT room, name FROM queues")
        return [(room, name) for room, name in rows]

    async def create_queue(self, room: str, name: str) -> None:
        await self._db.execute(
            "INSERT OR IGNORE INTO queues (room, name) VALUES (?, ?)", (room, name)
        )

    async def delete_queue(self, room: str, name: str) -> None:
        await self._db.execute(
            "DELETE FROM messages WHERE room = ? AND queue = ?", (room, name)
        )
        await self._db.execute("DELETE FROM queues WHERE room = ? AND name = ?", (room, name))

    async def queue_sizes(self, room: str) -> dict[str, int]:
        rows = await self._db.execute_fetchall(
            "SELECT queue, count(*) FROM messages WHERE room = ? GROUP BY queue", (room,)
        )
        return {queue: size for queue, size in rows}

    async def peek(self, room: str, queue: str, offset: int, limit: int) -> list[tuple[int, str]]:
        """Messages ``offset`` to ``offset + limit`` in line order, left where they are."""
        rows = await self._db.execute_fetchall(
            "SELECT id, body FROM messages WHERE room = ? AND queue = ? ORDER BY id LIMIT ? OFFSET ?",
            (room, queue, limit, offset),
        )
        return [(message_id, body) for message_id, body in rows]

    async def append(self, room: str, queue: str, body: str) -> int:
        rows = await self._db.execute_fetchall(
            "INSERT INTO messages (room, queue, body) VALUES (?, ?, ?) RETURNING id",
            (room, queue, body),
        )
        return next(iter(rows))[0]

    async def pop(self, room: str, queue: str) -> tuple[int, str] | None:
        """Remove and return the oldest message of a queue, in one statement."""
        rows = await self._db.execute_fetchall(
            "DELETE FROM messages WHERE id = (SELECT id FROM messages WHERE room = ? AND queue = ?"
            " ORDER BY id LIMIT 1) RETURNING id, body",
            (room, queue),
        )
        for message_id, body in rows:
            return message_id, body
        return None

    async def put_back(self, room: str, queue: str, message_id: int, body: str) -> None:
        """Return a popped message to its old place (its id orders it)."""
        await self._db.execute(
            "INSERT INTO messages (id, room, queue, body) VALUES (?, ?, ?, ?)",
            (message_id, room, queue, body),
        )

    async def drain(self, room: str, queue: str) -> None:
        await self._db.execute("DELETE FROM messages WHERE room = ? AND queue = ?", (room, queue))

    # ------------------------------------------------------------ rooms

    async def create_room(self, room: str, now: str) -> None:
        """Record a room made on purpose (once: a second record is ignored)."""
        await self._db.execute("INSERT OR IGNORE INTO rooms (room, created_at) VALUES (?, ?)", (room, now))

    async def room_names(self) -> list[str]:
        """Every room that has a record, a queue, a message or a file, by name."""
        rows = await self._db.execute_fetchall(
            "SELECT room FROM rooms UNION SELECT room FROM queues UNION SELECT room FROM messages"
            " UNION SELECT room FROM files ORDER BY room"
        )
        return [room for (room,) in rows]

    async def files_summary(self, room: str) -> tuple[int, int, str | None]:
        """How many files a room has, their total size and the latest change time."""
        rows = await self._db.execute_fetchall(
            "SELECT count(*), coalesce(sum(size), 0), max(updated_at) FROM files WHERE room = ?",
            (room,),
        )
        count, size, latest = next(iter(rows))
        return count, size, latest

    # ------------------------------------------------------------ files

    async def file(self, room: str, path: str) -> FileRow | None:
        rows = await self._db.execute_fetchall(
            "SELECT path, size, mime_type, created_at, updated_at FROM files"
            " WHERE room = ? AND path = ?",
            (room, path),
        )
        for row in rows:
            return FileRow(*row)
        return None

    async def files_under(self, room: str, folder: str) -> list[FileRow]:
        """Every file below ``folder`` (``""`` = the whole room), in path order."""
        if folder:
            # Range scan on the primary key: every path that starts with "folder/".
            rows = await self._db.execute_fetchall(
                "SELECT path, size, mime_type, created_at, updated_at FROM files"
                " WHERE room = ? AND path >= ? AND path < ? ORDER BY path",
                (room, folder + "/", folder + "0"),  # "0" sorts right after "/"
            )
        else:
            rows = await self._db.execute_fetchall(
                "SELECT path, size, mime_type, created_at, updated_at FROM files"
                " WHERE room = ? ORDER BY path",
                (room,),
            )
        return [FileRow(*row) for row in rows]

    async def has_files_under(self, room: str, folder: str) -> bool:
        rows = await self._db.execute_fetchall(
            "SELECT 1 FROM files WHERE room = ? AND path >= ? AND path < ? LIMIT 1",
            (room, folder + "/", folder + "0"),
        )
        return bool(list(rows))

    async def read_file(self, room: str, path: str) -> tuple[FileRow, bytes] | None:
        """A file's row and its bytes, in one statement."""
        rows = await self._db.execute_fetchall(
            "SELECT path, size, mime_type, created_at, updated_at, data FROM files"
            " WHERE room = ? AND path = ?",
            (room, path),
        )
        for *row, data in rows:
            return FileRow(*row), bytes(data)
        return None

    async def write_file(
        self, room: str, path: str, data: bytes, mime_type: str, now: str
    ) -> None:
        await self._db.execute(
            "INSERT INTO files (room, path, data, size, mime_type, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (room, path) DO UPDATE SET data = excluded.data, size = excluded.size,"
            " mime_type = excluded.mime_type, updated_at = excluded.updated_at",
            (room, path, data, len(data), mime_type, now, now),
        )

    async def delete_tree(self, room: str, path: str) -> int:
        """Delete the file at ``path`` and everything below it, in one statement."""
        rows = await self._db.execute_fetchall(
            "DELETE FROM files WHERE room = ? AND (path = ? OR (path >= ? AND path < ?))"
            " RETURNING path",
            (room, path, path + "/", path + "0"),
        )
        return len(list(rows))

    async def move_tree(self, room: str, source: str, destination: str, now: str) -> int:
        """Rename ``source`` and everything below it to sit under ``destination``."""
        rows = await self._db.execute_fetchall(
            "UPDATE files SET path = ? || substr(path, ?), updated_at = ?"
            " WHERE room = ? AND (path = ? OR (path >= ? AND path < ?)) RETURNING path",
            (destination, len(source) + 1, now, room, source, source + "/", source + "0"),
        )
        return len(list(rows))
