"""SQLite persistence: the schema, the queries the models need, and one writer with group commit.

One ``sqlite3`` connection, used only from the event loop's thread, is the only writer.
A write runs at once, inside the batch that is open (``BEGIN`` when the first write of a
loop iteration arrives), and returns the future of that batch's commit; the batch commits
on the next turn of the loop. So every write made in one turn (a burst of pipelined sends,
many connections at once) shares one ``COMMIT``, and each caller answers its client only
once its own commit is done: an acknowledged write is on disk.

Why on the loop's thread and not in a thread of its own: a statement takes a few
microseconds and a ``COMMIT`` in WAL mode with ``synchronous=NORMAL`` writes the WAL
without an fsync, while handing work to a thread and back costs tens of microseconds of
wake-ups per call (that hand-off was most of the emulator's time per queue operation
with aiosqlite). The one slow thing a commit can do, a WAL checkpoint (which fsyncs the
database file), is moved to a thread of its own (``_Checkpointer``), and file contents never
go through SQLite at all: they live in blob files beside it (``blobs.py``).

Reads run at once on the same connection, so they see the open batch: the emulator reads
its own writes. Queue sizes and the next message id are kept in memory by the models.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localmesh.emulator.blobs import Blobs
from localmesh.protocol.loop_turn import ALWAYS_BUSY, ready_queue

from .datadir import private_database

logger = logging.getLogger("localmesh.store")

SCHEMA_VERSION = 3
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
-- A queue's line, in one b-tree: (room, queue, id) orders it, and a message put back keeps
-- its id, so it keeps its place. Ids are handed out by the queue model (in memory), always
-- above every id in the table. One b-tree (no rowid, no separate index) means one page to
-- write per send or pop.
CREATE TABLE IF NOT EXISTS messages (
    room TEXT NOT NULL,
    queue TEXT NOT NULL,
    id INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (room, queue, id)
) WITHOUT ROWID;
-- Rooms made on purpose (the Studio's "create a room"); other rooms exist through their
-- queues and files, as in MeshAgent, where a room comes to be when someone joins it.
CREATE TABLE IF NOT EXISTS rooms (
    room TEXT PRIMARY KEY,
    created_at TEXT NOT NULL
);
-- A file's bytes are in the blob file named ``blob`` (see blobs.py); this is its metadata.
CREATE TABLE IF NOT EXISTS files (
    room TEXT NOT NULL,
    path TEXT NOT NULL,
    blob TEXT NOT NULL,
    size INTEGER NOT NULL,
    mime_type TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (room, path)
);
"""

# Commits between two checkpoints. Each copies the WAL into the database and fsyncs twice, and
# a page changed many times is copied once: at 64, checkpoints cost ~4 % of the server's CPU
# per sequential queue operation. Between two, the WAL grows by the pages of 512 commits
# (a few MB for queue traffic).
CHECKPOINT_EVERY = 512
WAL_SIZE_LIMIT = 64 * 1024 * 1024  # the WAL file is cut back to this once it restarts
BUSY_TIMEOUT_MS = 10_000  # another process (``localmesh env``) may hold the lock briefly


@dataclass(frozen=True)
class FileRow:
    path: str
    size: int
    mime_type: str
    created_at: str
    updated_at: str
    blob: str = ""


class StoreFailed(sqlite3.OperationalError):
    """A batch could not be committed (disk full, I/O error): its writes were rolled back.
    An ``OperationalError`` with SQLite's message, as the statement itself would raise."""


Committed = asyncio.Future[None]
_Callback = tuple[Callable[..., None], tuple[Any, ...]]
_FILE_COLUMNS = "path, size, mime_type, created_at, updated_at, blob"


class Store:
    """The database of one emulator: keys, queues, messages and file metadata of every room."""

    def __init__(self, db: sqlite3.Connection, blobs: Blobs, checkpointer: _Checkpointer | None,
                 data_dir: Path | None = None) -> None:
        self._db = db
        self._data_dir = data_dir
        self._lock_fd = -1
        self.blobs = blobs
        self._checkpointer = checkpointer
        self._batch: list[Committed] = []
        self._after_batch: list[_Callback] = []  # run as the open batch ends
        self._unlink_after_commit: list[str] = []  # blobs the open batch stops pointing at
        self._flush_handle: asyncio.Handle | None = None
        self._reading = False  # a socket read is being handled: it commits as it ends
        # The loop this store last ran in and its ready queue (``read_ended`` asks it).
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: Sized = ALWAYS_BUSY
        self._closed = False
        self._rollback_listeners: list[Callable[[], None]] = []
        self.commits = 0  # how many batches were committed (the benchmark reports writes/commit)
        self.writes = 0

    @classmethod
    async def open(cls, data_dir: Path | None, *, durable: bool = True) -> Store:
        """Open (creating) ``data_dir/localmesh.db``; ``None`` keeps everything in memory
        (file contents in a temporary folder removed at ``close``).

        ``durable=False`` skips fsync (``synchronous=OFF``): the data still survives the
        process ending or crashing, not the machine losing power. Test servers use it: on a
        busy disk, fsyncs made opening and closing a store cost tens of milliseconds."""
        if data_dir is None:
            db = _connect(":memory:")
            blobs = Blobs.temporary()
            checkpointer = None
        else:
            path = private_database(data_dir)  # 0700 folder, 0600 file: it holds the key
            db = _connect(str(path))
            if not durable:
                # Before the switch to WAL, which otherwise fsyncs a new file (2-20 ms here).
                db.execute("PRAGMA synchronous=OFF")
            db.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL is durable against process crashes (kill -9), which is what a
            # restart test needs; an fsync per commit would only guard against power loss.
            db.execute(f"PRAGMA synchronous={'NORMAL' if durable else 'OFF'}")
            # Checkpoints run in the checkpointer's thread, never inside a commit on the loop.
            db.execute("PRAGMA wal_autocheckpoint=0")
            db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
            blobs = Blobs(data_dir / "blobs")
            checkpointer = _Checkpointer(path)
        try:
            _migrate(db, blobs)
        except BaseException:
            db.close()
            blobs.close()
            raise
        return cls(db, blobs, checkpointer, data_dir)

    def claim(self) -> None:
        """Become the one server of this data dir: lock it, then remove blobs that no file
        points at (left by a crash mid-upload). A second server on the same dir is refused,
        since it would sweep away the first one's uploads in progress."""
        if self._data_dir is not None:
            fd = os.open(self._data_dir / "localmesh.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise OSError(f"another localmesh server is using {self._data_dir}") from None
            self._lock_fd = fd
        swept = self.blobs.sweep(self.blob_names())
        if swept:
            logger.info("removed %d blob files that no file pointed at", swept)

    async def close(self) -> None:
        self._flush()
        self._closed = True  # a flush still scheduled finds nothing to do
        self._db.close()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # closing it releases the lock
            self._lock_fd = -1
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self.blobs.close()

    # ------------------------------------------------------------ the writer

    def on_rollback(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` when a batch is rolled back, so in-memory state can be reloaded."""
        self._rollback_listeners.append(listener)

    def _write(self, sql: str, params: Iterable[object] = ()) -> sqlite3.Cursor:
        """Run one write in the open batch, opening one (and scheduling its commit) if needed."""
        if not self._db.in_transaction:
            self._db.execute("BEGIN")
            if self._flush_handle is None and not self._reading:
                self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)
        self.writes += 1
        try:
            return self._db.execute(sql, params)
        except sqlite3.Error:
            if not self._db.in_transaction:  # SQLite rolled the whole batch back (disk full...)
                self._fail_batch("the write failed and SQLite rolled its batch back")
            raise

    def committed(self) -> Committed:
        """The future of the open batch's commit (done at once if nothing is pending)."""
        future = asyncio.get_running_loop().create_future()
        if self._db.in_transaction:
            self._batch.append(future)
        else:
            future.set_result(None)
        return future

    def after_commit(self, committed: Committed, callback: Callable[..., None], *args: Any) -> None:
        """Call ``callback(*args)`` once ``committed`` is done (committed or rolled back),
        right after the commit, in the same callback: a future's own callbacks run one loop
        pass later, which a reply written from here does not wait for."""
        if committed.done():  # pending means: of the open batch (see ``committed``)
            callback(*args)
        else:
            self._after_batch.append((callback, args))

    def read_started(self) -> None:
        """A socket read is being handled: what it writes is committed as it ends
        (``read_ended``), with no commit scheduled for each write meanwhile."""
        self._reading = True

    def read_ended(self) -> None:
        """Commit what the read wrote: at once if nothing else is left to run in this turn of
        the event loop (nothing could join the batch before its commit anyway: a read that
        comes in the next pass runs after it), saving the loop a pass; else, or when the loop
        cannot tell (uvloop: ``localmesh.protocol.loop_turn``), on the next pass."""
        self._reading = False
        if self._flush_handle is not None or not self._db.in_transaction:
            return
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop, self._ready = loop, ready_queue(loop)
        if not self._ready:
            self._flush()
        else:
            self._flush_handle = loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        if self._closed or not self._db.in_transaction:
            return
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as error:
            logger.error("commit failed, rolling back %d writes: %s", len(self._batch), error)
            self._fail_batch(f"commit failed: {error}")
            return
        self.commits += 1
        for name in self._unlink_after_commit:  # gone for good now: no row can point at them
            self.blobs.remove(name)
        self._unlink_after_commit = []
        batch, self._batch = self._batch, []
        for future in batch:
            if not future.done():  # a cancelled waiter's future is done already
                future.set_result(None)
        self._run_after_batch()
        if self._checkpointer is not None:
            self._checkpointer.nudge()

    def _run_after_batch(self, callbacks: list[_Callback] | None = None) -> None:
        if callbacks is None:
            callbacks, self._after_batch = self._after_batch, []
        for callback, args in callbacks:
            try:
                callback(*args)
            except Exception:  # one caller's bug must not keep the others waiting
                logger.exception("a commit callback failed")

    def _fail_batch(self, reason: str) -> None:
        self._unlink_after_commit = []  # rolled back: the rows point at them again
        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                logger.exception("rollback failed")
        batch, self._batch = self._batch, []
        for future in batch:
            if not future.done():
                future.set_exception(StoreFailed(reason))
        for listener in self._rollback_listeners:
            listener()
        if self._after_batch:
            # On the next pass, as a future's callbacks: this may run inside a caller's write.
            callbacks, self._after_batch = self._after_batch, []
            asyncio.get_running_loop().call_soon(self._run_after_batch, callbacks)

    async def flushed(self) -> None:
        """Wait until everything written so far is committed."""
        await self.committed()

    def shrink_wal(self) -> None:
        """On a full disk: copy the WAL into the database and cut the file to nothing. The WAL
        can hold megabytes (it restarts from the top but keeps its size); the database grows by
        at most what it held, so this gives space back for the deletes that free more."""
        if self._closed or self._db.in_transaction:
            return
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as error:
            logger.warning("could not cut the WAL back on a full disk: %s", error)

    def _read(self, sql: str, params: Iterable[object] = ()) -> list[tuple]:
        return self._db.execute(sql, params).fetchall()

    @property
    def connection(self) -> Connection:
        """The one connection, for feature stores that keep their own tables (services),
        with aiosqlite's call shapes; their writes join the batches like every other."""
        return Connection(self)

    # ------------------------------------------------------------ keys

    async def api_keys(self) -> list[tuple[str, str, str]]:
        rows = self._read("SELECT key_id, project_id, secret FROM api_keys ORDER BY created_at")
        return [tuple(row) for row in rows]  # type: ignore[misc]

    async def add_api_key(self, key_id: str, project_id: str, secret: str, created_at: str) -> None:
        self._write(
            "INSERT INTO api_keys (key_id, project_id, secret, created_at) VALUES (?, ?, ?, ?)",
            (key_id, project_id, secret, created_at),
        )
        await self.committed()

    # ------------------------------------------------------------ queues
    # Writes here run at once and return the commit future of their batch; the queue model
    # keeps sizes and ids in memory and awaits the future before it answers a client.

    def all_queues(self) -> list[tuple[str, str]]:
        return [(room, name) for room, name in self._read("SELECT room, name FROM queues")]

    def queue_sizes(self) -> dict[tuple[str, str], int]:
        """Every queue's message count, read once at start."""
        rows = self._read("SELECT room, queue, count(*) FROM messages GROUP BY room, queue")
        return {(room, queue): size for room, queue, size in rows}

    def last_message_id(self) -> int:
        """The highest message id in line, read once at start: new ids go above it."""
        return self._read("SELECT max(id) FROM messages")[0][0] or 0

    def create_queue(self, room: str, name: str) -> Committed:
        self._write("INSERT OR IGNORE INTO queues (room, name) VALUES (?, ?)", (room, name))
        return self.committed()

    def delete_queue(self, room: str, name: str) -> Committed:
        self._write("DELETE FROM messages WHERE room = ? AND queue = ?", (room, name))
        self._write("DELETE FROM queues WHERE room = ? AND name = ?", (room, name))
        return self.committed()

    def append(self, message_id: int, room: str, queue: str, body: str) -> Committed:
        """Add a message at ``message_id``'s place in line (also how a taken one is put back)."""
        self._write(
            "INSERT INTO messages (room, queue, id, body) VALUES (?, ?, ?, ?)",
            (room, queue, message_id, body),
        )
        return self.committed()

    def pop(self, room: str, queue: str) -> tuple[int, str, Committed] | None:
        """Remove the oldest message of a queue, in one statement: ``(id, body, committed)``."""
        row = self._write(
            "DELETE FROM messages WHERE room = ?1 AND queue = ?2 AND id = (SELECT id FROM messages"
            " WHERE room = ?1 AND queue = ?2 ORDER BY id LIMIT 1) RETURNING id, body",
            (room, queue),
        ).fetchone()
        if row is None:
            return None
        return row[0], row[1], self.committed()

    def peek(self, room: str, queue: str, offset: int, limit: int) -> list[tuple[int, str]]:
        """Messages ``offset`` to ``offset + limit`` in line order, left where they are."""
        return [(message_id, body) for message_id, body in self._read(
            "SELECT id, body FROM messages WHERE room = ? AND queue = ? ORDER BY id LIMIT ? OFFSET ?",
            (room, queue, limit, offset),
        )]

    def drain(self, room: str, queue: str) -> Committed:
        self._write("DELETE FROM messages WHERE room = ? AND queue = ?", (room, queue))
        return self.committed()

    # ------------------------------------------------------------ rooms

    async def create_room(self, room: str, now: str) -> None:
        """Record a room made on purpose (once: a second record is ignored)."""
        self._write("INSERT OR IGNORE INTO rooms (room, created_at) VALUES (?, ?)", (room, now))
        await self.committed()

    async def room_names(self) -> list[str]:
        """Every room that has a record, a queue, a message or a file, by name."""
        return [room for (room,) in self._read(
            "SELECT room FROM rooms UNION SELECT room FROM queues UNION SELECT room FROM messages"
            " UNION SELECT room FROM files ORDER BY room"
        )]

    async def files_summary(self, room: str) -> tuple[int, int, str | None]:
        """How many files a room has, their total size and the latest change time."""
        count, size, latest = self._read(
            "SELECT count(*), coalesce(sum(size), 0), max(updated_at) FROM files WHERE room = ?",
            (room,),
        )[0]
        return count, size, latest

    # ------------------------------------------------------------ files (metadata)

    def file_now(self, room: str, path: str) -> FileRow | None:
        rows = self._read(f"SELECT {_FILE_COLUMNS} FROM files WHERE room = ? AND path = ?", (room, path))
        return FileRow(*rows[0]) if rows else None

    async def file(self, room: str, path: str) -> FileRow | None:
        return self.file_now(room, path)

    def files_under_now(self, room: str, folder: str) -> list[FileRow]:
        if folder:
            # Range scan on the primary key: every path that starts with "folder/".
            rows = self._read(
                f"SELECT {_FILE_COLUMNS} FROM files WHERE room = ? AND path >= ? AND path < ?"
                " ORDER BY path",
                (room, folder + "/", folder + "0"),  # "0" sorts right after "/"
            )
        else:
            rows = self._read(
                f"SELECT {_FILE_COLUMNS} FROM files WHERE room = ? ORDER BY path", (room,)
            )
        return [FileRow(*row) for row in rows]

    async def files_under(self, room: str, folder: str) -> list[FileRow]:
        """Every file below ``folder`` (``""`` = the whole room), in path order."""
        return self.files_under_now(room, folder)

    def has_files_under_now(self, room: str, folder: str) -> bool:
        return bool(self._read(
            "SELECT 1 FROM files WHERE room = ? AND path >= ? AND path < ? LIMIT 1",
            (room, folder + "/", folder + "0"),
        ))

    async def has_files_under(self, room: str, folder: str) -> bool:
        return self.has_files_under_now(room, folder)

    def blob_names(self) -> set[str]:
        return {name for (name,) in self._read("SELECT blob FROM files")}

    def put_file(self, room: str, path: str, blob: str, size: int, mime_type: str,
                 now: str) -> Committed:
        """Point ``path`` at ``blob`` (fully written); the blob it pointed at before is
        removed once this is committed."""
        old = self.file_now(room, path)
        self._write(
            "INSERT INTO files (room, path, blob, size, mime_type, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (room, path) DO UPDATE SET blob = excluded.blob, size = excluded.size,"
            " mime_type = excluded.mime_type, updated_at = excluded.updated_at",
            (room, path, blob, size, mime_type, now, now),
        )
        if old is not None:
            self._unlink_after_commit.append(old.blob)
        return self.committed()

    def delete_tree(self, room: str, path: str) -> Committed:
        """Delete the file at ``path`` and everything below it, in one statement; their
        blobs are removed once this is committed."""
        rows = self._write(
            "DELETE FROM files WHERE room = ? AND (path = ? OR (path >= ? AND path < ?))"
            " RETURNING blob",
            (room, path, path + "/", path + "0"),
        ).fetchall()
        self._unlink_after_commit.extend(blob for (blob,) in rows)
        return self.committed()

    def move_tree(self, room: str, source: str, destination: str, now: str) -> Committed:
        """Rename ``source`` and everything below it to sit under ``destination``."""
        self._write(
            "UPDATE files SET path = ? || substr(path, ?), updated_at = ?"
            " WHERE room = ? AND (path = ? OR (path >= ? AND path < ?))",
            (destination, len(source) + 1, now, room, source, source + "/", source + "0"),
        )
        return self.committed()

    async def read_file(self, room: str, path: str) -> tuple[FileRow, bytes] | None:
        """A file's row and all its bytes (for tests and small files; streams use ``blobs``)."""
        row = self.file_now(room, path)
        if row is None:
            return None
        with self.blobs.open(row.blob) as reader:
            return row, await reader.read_all()

    # ------------------------------------------------------------ whole rooms (reset, export)

    @staticmethod
    def _where_rooms(namespace: str | None) -> tuple[str, tuple[str, ...]]:
        """A WHERE clause picking the room keys of ``namespace`` (None: every room)."""
        if namespace is None:
            return "1", ()
        if namespace == "":
            return "instr(room, '/') = 0", ()  # the main project's keys are plain names
        return "room >= ? AND room < ?", (namespace + "/", namespace + "0")  # "0" follows "/"

    async def room_keys(self, namespace: str | None = None) -> list[str]:
        """Every room with a record, a queue or a file, of ``namespace`` (None: every one)."""
        where, params = self._where_rooms(namespace)
        return [room for (room,) in self._read(
            f"SELECT room FROM rooms WHERE {where} UNION SELECT room FROM queues WHERE {where}"
            f" UNION SELECT room FROM messages WHERE {where} UNION SELECT room FROM files"
            f" WHERE {where} ORDER BY room",
            params * 4,
        )]

    def clear_rooms(self, namespace: str | None = None, room: str | None = None) -> Committed:
        """Delete the queues, messages, files (and their blobs) and room records of one room,
        or of every room of ``namespace``, at once in the open batch; await the result for
        its commit."""
        where, params = ("room = ?", (room,)) if room is not None else self._where_rooms(namespace)
        for table in ("messages", "queues", "rooms"):
            self._write(f"DELETE FROM {table} WHERE {where}", params)
        blobs = self._write(f"DELETE FROM files WHERE {where} RETURNING blob", params).fetchall()
        self._unlink_after_commit.extend(blob for (blob,) in blobs)
        return self.committed()

    async def messages(self, room: str, queue: str) -> list[str]:
        """The bodies of a queue's messages, in line order."""
        return [body for (body,) in self._read(
            "SELECT body FROM messages WHERE room = ? AND queue = ? ORDER BY id", (room, queue))]

    async def queue_names(self, room: str) -> list[str]:
        return [name for (name,) in self._read(
            "SELECT name FROM queues WHERE room = ? UNION SELECT queue FROM messages WHERE room = ?"
            " ORDER BY 1", (room, room))]

    async def import_file(self, room: str, row: FileRow, data: bytes) -> None:
        """Write a file as it was exported, times included."""
        blob = self.blobs.write_now(data)
        old = self.file_now(room, row.path)
        self._write(
            "INSERT OR REPLACE INTO files (room, path, blob, size, mime_type, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (room, row.path, blob, len(data), row.mime_type, row.created_at, row.updated_at),
        )
        if old is not None:
            self._unlink_after_commit.append(old.blob)
        await self.committed()


class Connection:
    """aiosqlite's ``execute``/``execute_fetchall``/``executescript`` on the store's one
    connection: reads run at once, writes join the open batch and return once committed."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def execute(self, sql: str, params: Iterable[object] = ()) -> sqlite3.Cursor:
        cursor = self._store._write(sql, params)
        await self._store.committed()
        return cursor

    async def execute_fetchall(self, sql: str, params: Iterable[object] = ()) -> list[tuple]:
        if sql.lstrip()[:6].upper() == "SELECT":
            return self._store._read(sql, params)
        rows = self._store._write(sql, params).fetchall()
        await self._store.committed()
        return rows

    async def executescript(self, script: str) -> None:
        self._store._flush()  # executescript commits first: let the open batch end properly
        self._store._db.executescript(script)


def _connect(target: str) -> sqlite3.Connection:
    # isolation_level=None: we say BEGIN and COMMIT ourselves (the batches).
    # check_same_thread stays on: only the loop's thread may touch this connection.
    db = sqlite3.connect(target, isolation_level=None)
    db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return db


def _migrate(db: sqlite3.Connection, blobs: Blobs) -> None:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    old_files = db.execute(
        "SELECT 1 FROM pragma_table_info('files') WHERE name = 'data'"
    ).fetchone() is not None
    if old_files:
        _move_file_data_to_blobs(db, blobs)
    old_messages = db.execute(
        "SELECT 1 FROM sqlite_master WHERE name = 'messages' AND sql LIKE '%AUTOINCREMENT%'"
    ).fetchone() is not None
    if old_messages:
        _move_messages_to_one_tree(db)
    db.executescript(SCHEMA)
    if version != SCHEMA_VERSION:
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def _move_file_data_to_blobs(db: sqlite3.Connection, blobs: Blobs) -> None:
    """Version 1 kept each file as a BLOB in the ``files`` row: write those out as blob files."""
    logger.info("moving file contents out of SQLite into %s", blobs.folder)
    db.execute("BEGIN")
    db.execute(
        "CREATE TABLE files_v2 (room TEXT NOT NULL, path TEXT NOT NULL, blob TEXT NOT NULL,"
        " size INTEGER NOT NULL, mime_type TEXT NOT NULL, created_at TEXT NOT NULL,"
        " updated_at TEXT NOT NULL, PRIMARY KEY (room, path))"
    )
    for room, path, data, mime_type, created_at, updated_at in db.execute(
        "SELECT room, path, data, mime_type, created_at, updated_at FROM files"
    ).fetchall():
        name = blobs.write_now(bytes(data))
        db.execute(
            "INSERT INTO files_v2 VALUES (?, ?, ?, ?, ?, ?, ?)",
            (room, path, name, len(data), mime_type, created_at, updated_at),
        )
    db.execute("DROP TABLE files")
    db.execute("ALTER TABLE files_v2 RENAME TO files")
    db.execute("COMMIT")


def _move_messages_to_one_tree(db: sqlite3.Connection) -> None:
    """Version 1 had a rowid table plus an index: copy the line into the one-tree table."""
    db.execute("BEGIN")
    db.execute(
        "CREATE TABLE messages_v3 (room TEXT NOT NULL, queue TEXT NOT NULL, id INTEGER NOT NULL,"
        " body TEXT NOT NULL, PRIMARY KEY (room, queue, id)) WITHOUT ROWID"
    )
    db.execute("INSERT INTO messages_v3 SELECT room, queue, id, body FROM messages")
    db.execute("DROP TABLE messages")
    db.execute("ALTER TABLE messages_v3 RENAME TO messages")
    db.execute("COMMIT")


class _Checkpointer:
    """Copies the WAL into the database from a thread of its own, so that the fsync a
    checkpoint does never stalls the event loop. Commits ``nudge`` it; it checkpoints
    (PASSIVE: never blocks the writer) every ``CHECKPOINT_EVERY`` commits."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._wake = threading.Event()
        self._stopping = False
        self._nudges = 0
        self._thread: threading.Thread | None = None

    def nudge(self) -> None:
        self._nudges += 1
        if self._nudges % CHECKPOINT_EVERY:
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="localmesh-checkpoint", daemon=True)
            self._thread.start()
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        db = sqlite3.connect(str(self._path), isolation_level=None, check_same_thread=False)
        try:
            db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stopping:
                    break
                try:
                    # PASSIVE takes no lock the writer needs: the loop never waits on it. Once
                    # all of the WAL is copied, the writer's next batch starts it from the top.
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as error:
                    logger.warning("WAL checkpoint failed: %s", error)
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as error:
            logger.warning("final WAL checkpoint failed: %s", error)
        finally:
            db.close()
