"""File contents as blob files beside the database, streamed in and out in pieces.

Each stored version of a file is one blob file, named by a random id, written once and
never changed; the ``files`` table in SQLite says which blob a path points at. That gives:

- memory flat in the file size: uploads are written piece by piece as they arrive, and
  downloads read piece by piece as they are pulled (nothing is read before the first pull);
- no bulk data through SQLite's WAL (written once, not twice, and no checkpoint stalls
  for queue commits) and no SQLite size limit on a file;
- a consistent read for free: a download holds its blob open, and a blob replaced or
  deleted meanwhile is only unlinked, so the download still reads the version it started.

The order of steps keeps the two consistent: a blob is fully written before the row that
points at it is committed, and a blob is unlinked only after the row that pointed at it is
gone for good (committed). A crash in between leaves an unreferenced blob, which
``sweep`` removes at the next start.

Pieces larger than ``INLINE_IO_BYTES`` are read and written in a small thread pool, so a
slow disk delays one transfer, never the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

INLINE_IO_BYTES = 64 * 1024
READ_BLOCK = 1024 * 1024  # downloads read ahead this much at a time


class Blobs:
    """A folder of blob files (``data_dir/blobs``, or a temporary one for an in-memory room)."""

    def __init__(self, folder: Path, *, temporary: bool = False) -> None:
        self.folder = folder
        self._temporary = temporary
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._io: ThreadPoolExecutor | None = None

    @classmethod
    def temporary(cls) -> Blobs:
        return cls(Path(tempfile.mkdtemp(prefix="localmesh-blobs-")), temporary=True)

    def _executor(self) -> ThreadPoolExecutor:
        if self._io is None:
            self._io = ThreadPoolExecutor(max_workers=2, thread_name_prefix="localmesh-blob-io")
        return self._io

    def close(self) -> None:
        if self._io is not None:
            self._io.shutdown(wait=True)
            self._io = None
        if self._temporary:
            shutil.rmtree(self.folder, ignore_errors=True)

    def path(self, name: str) -> Path:
        return self.folder / name

    def create(self) -> BlobWriter:
        """A new, empty blob to write a file version into."""
        name = uuid.uuid4().hex
        fd = os.open(self.path(name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        return BlobWriter(self, name, fd)

    def write_now(self, data: bytes) -> str:
        """Write a whole blob at once (small files, migrations); returns its name."""
        writer = self.create()
        try:
            _write_all(writer._fd, data)
        finally:
            writer.close()
        return writer.name

    def open(self, name: str) -> BlobReader:
        """Open a blob for reading; it stays readable until closed, even once removed."""
        return BlobReader(self, os.open(self.path(name), os.O_RDONLY))

    def remove(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(name))

    def sweep(self, keep: set[str]) -> int:
        """Remove every blob not in ``keep`` (left by a crash or an interrupted upload)."""
        removed = 0
        for entry in os.scandir(self.folder):
            if entry.is_file() and entry.name not in keep:
                self.remove(entry.name)
                removed += 1
        return removed


class _Descriptor:
    """An open blob file. Pieces too big to handle inline go to the blob thread pool; the
    descriptor is closed only once no thread uses it any more (a cancelled transfer must
    not close it under a running read or write)."""

    def __init__(self, blobs: Blobs, fd: int) -> None:
        self._blobs = blobs
        self._fd = fd
        self._in_threads = 0
        self._close_pending = False

    async def _in_thread(self, function, *args):  # type: ignore[no-untyped-def]
        if self._fd < 0:
            raise ValueError("the blob is closed")
        running = asyncio.get_running_loop().run_in_executor(
            self._blobs._executor(), function, self._fd, *args)
        self._in_threads += 1
        running.add_done_callback(self._thread_done)
        return await asyncio.shield(running)

    def _thread_done(self, _: asyncio.Future[object]) -> None:
        self._in_threads -= 1
        if self._close_pending and not self._in_threads:
            self.close()

    def close(self) -> None:
        if self._in_threads:
            self._close_pending = True
            return
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        # A reader handed to a response that never started: no thread can be using it now
        # (a running read keeps its descriptor object alive through its callback).
        if self._fd >= 0 and not self._in_threads:
            os.close(self._fd)


class BlobWriter(_Descriptor):
    """One blob being written, in order, piece by piece."""

    def __init__(self, blobs: Blobs, name: str, fd: int) -> None:
        super().__init__(blobs, fd)
        self.name = name
        self.size = 0

    async def write(self, data: bytes) -> None:
        if len(data) <= INLINE_IO_BYTES:
            _write_all(self._fd, data)
        else:
            await self._in_thread(_write_all, data)
        self.size += len(data)

    def discard(self) -> None:
        """Give up on this blob (the upload failed): close and remove it."""
        self.close()
        self._blobs.remove(self.name)


class BlobReader(_Descriptor):
    """One open blob: its size, and its bytes by offset."""

    def __init__(self, blobs: Blobs, fd: int) -> None:
        super().__init__(blobs, fd)
        self.size = os.fstat(fd).st_size

    async def read(self, offset: int, length: int) -> bytes:
        if length <= INLINE_IO_BYTES:
            return os.pread(self._fd, length, offset)
        return await self._in_thread(_read_exactly, length, offset)

    async def read_all(self) -> bytes:
        return await self.read(0, self.size)

    async def blocks(self, start: int = 0, block: int = READ_BLOCK) -> AsyncIterator[bytes]:
        """The bytes from ``start`` on, in blocks, the next one read while this one is used."""
        offset = start
        ahead: asyncio.Future[bytes] | None = None
        try:
            while offset < self.size:
                current = ahead if ahead is not None else asyncio.ensure_future(
                    self.read(offset, min(block, self.size - offset)))
                ahead = None
                data = await current
                if not data:
                    raise OSError(f"blob ended at {offset} of its {self.size} bytes")
                offset += len(data)
                if offset < self.size:
                    ahead = asyncio.ensure_future(self.read(offset, min(block, self.size - offset)))
                yield data
        finally:
            if ahead is not None:
                ahead.cancel()

    def __enter__(self) -> BlobReader:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_exactly(fd: int, length: int, offset: int) -> bytes:
    parts = []
    while length > 0:
        part = os.pread(fd, length, offset)
        if not part:
            break
        parts.append(part)
        offset += len(part)
        length -= len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)
