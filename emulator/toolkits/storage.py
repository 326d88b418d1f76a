"""The ``storage`` toolkit on the wire: grant checks, streamed upload/download, file events."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from localmesh.emulator.blobs import BlobReader
from localmesh.emulator.calls import Call, Handler
from localmesh.emulator.errors import INVALID_REQUEST, RoomError
from localmesh.emulator.paths import basename
from localmesh.emulator.storage import Storage, Upload, canonical, canonical_file
from localmesh.emulator.storage_access import require_presign, require_storage
from localmesh.protocol.wire import (
    Content,
    binary_content,
    control_close,
    empty_content,
    guess_mime_type,
    is_valid_unicode,
    json_content,
)

if TYPE_CHECKING:
    from localmesh.emulator.faults import WriteGuard

# The upload pull size: big enough that per-chunk overhead is small, small enough that the
# PULLS_AHEAD pieces in flight keep the server's memory flat in the file size.
PULL_CHUNK_SIZE = 1024 * 1024
PULLS_AHEAD = 2
DEFAULT_DOWNLOAD_CHUNK = 65536  # what the SDK asks for
MAX_DOWNLOAD_CHUNK = 1024 * 1024
CHUNK_TIMEOUT = 60.0  # a client that stops streaming mid-call frees the call after this

Broadcast = Callable[[str, str, dict[str, Any]], Awaitable[None]]
DownloadUrl = Callable[[Call, str], str]
# (room, participant, path) -> the guard of a fail_write fault aimed at this write, if any.
WriteGuards = Callable[[str, str | None, str], "WriteGuard | None"]
# What the toolkit tells the timeline: (room key, kind, participant, path, detail=...).
Record = Callable[..., None]


def _ignore(*args: Any, **kwargs: Any) -> None:
    pass


def _check(call: Call, action: str, path: str, subtree: bool = False) -> None:
    require_storage(call.participant, action, path, subtree)


def _binary_headers(content: Content, expected_kind: str) -> dict[str, Any]:
    headers = content.header.get("headers") if content.type == "binary" else None
    if not isinstance(headers, dict) or headers.get("kind") != expected_kind:
        raise RoomError(
            INVALID_REQUEST,
            f"expected a binary chunk of kind {expected_kind!r}, got {content.header!r}",
        )
    return headers


async def _fail_stream(call: Call, error: RoomError) -> None:
    """Refuse a streamed call the way the SDK reports it: an error chunk, then close."""
    if not call.streamed:
        raise error  # a plain call: a plain error reply, not a stream it never asked for
    call.error_code = error.code
    if not call.opened:
        await call.open_stream()
    await call.send_chunk(Content({"type": "error", "text": error.message, "code": error.code}))
    await call.send_chunk(control_close())


class StorageToolkit:
    name = "storage"

    def __init__(
        self, storage: Storage, broadcast: Broadcast, download_url: DownloadUrl,
        record: Record = _ignore, *,
        write_guard: WriteGuards | None = None,
    ) -> None:
        self._storage = storage
        self._broadcast = broadcast
        self._download_url = download_url
        self._write_guard = write_guard or (lambda room, participant, path: None)
        self._record = record

    def handlers(self) -> dict[str, Handler]:
        return {
            "exists": self.exists, "stat": self.stat, "list": self.list,
            "upload": self.upload, "download": self.download, "move": self.move,
            "delete": self.delete, "download_url": self.download_url,
        }

    async def exists(self, call: Call) -> Content:
        path = canonical(call.json_arguments().get("path"))
        _check(call, "list", path)
        return json_content({"exists": await self._storage.stat(call.room, path) is not None})

    async def stat(self, call: Call) -> Content:
        path = canonical(call.json_arguments().get("path"))
        _check(call, "list", path)
        entry = await self._storage.stat(call.room, path)
        if entry is None:
            return json_content({"exists": False})
        return json_content({"exists": True, **entry.to_json()})

    async def list(self, call: Call) -> Content:
        path = canonical(call.json_arguments().get("path", ""))
        _check(call, "list", path)
        entries = await self._storage.list(call.room, path)
        return json_content({"files": [entry.to_json() for entry in entries]})

    async def move(self, call: Call) -> Content:
        args = call.json_arguments()
        source = canonical(args.get("source_path"))
        destination = canonical(args.get("destination_path"))
        _check(call, "delete", source, subtree=True)
        _check(call, "write", destination, subtree=True)
        await self._storage.move(
            call.room, source, destination, overwrite=bool(args.get("overwrite", False))
        )
        self._record(call.room, "storage.move", call.participant.name, source, detail=destination)
        await self._broadcast(call.room, "storage.file.moved", {
            "source_path": source, "destination_path": destination,
            "participant_id": call.peer.participant_id,
        })
        return empty_content()

    async def delete(self, call: Call) -> Content:
        args = call.json_arguments()
        path = canonical(args.get("path"))
        recursive = bool(args.get("recursive"))
        _check(call, "delete", path, subtree=recursive)
        await self._storage.delete(call.room, path, recursive=recursive)
        self._record(call.room, "storage.delete", call.participant.name, path)
        await self._broadcast(call.room, "storage.file.deleted", {
            "path": path, "participant_id": call.peer.participant_id,
        })
        return empty_content()

    async def download_url(self, call: Call) -> Content:
        path = canonical_file(call.json_arguments().get("path"))
        require_presign(call.participant, path)
        await self._storage.require_file(call.room, path)  # a URL to nothing helps nobody
        return json_content({"url": self._download_url(call, path)})

    # ------------------------------------------------------------ streams

    async def upload(self, call: Call) -> Content | None:
        upload: Upload | None = None
        try:
            start = _binary_headers(await call.next_chunk(CHUNK_TIMEOUT), "start")
            call.note = {"path": start.get("path"), "size": start.get("size")}
            path = canonical_file(start.get("path"))
            overwrite = bool(start.get("overwrite", False))
            size = start.get("size")
            if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
                raise RoomError(INVALID_REQUEST, f"upload size must be a whole number, not {size!r}")
            self._storage.check_size(size or 0)
            _check(call, "write", path)
            mime_type = start.get("mime_type") or guess_mime_type(basename(path))
            if not isinstance(mime_type, str) or not is_valid_unicode(mime_type):
                raise RoomError(INVALID_REQUEST, f"mime_type must be a text string, not {mime_type!r}")
            guard = self._write_guard(call.room, call.participant.name, path)
            # Refused here, before a byte is pulled, if the path or the announced size is wrong.
            upload = self._storage.begin_upload(
                call.room, path, mime_type, overwrite=overwrite, size=size)
            await call.open_stream()
            await _pull(call, upload, self._storage.check_size, guard)
            if guard is not None:
                guard.complete(upload.received)
            finished, upload = upload, None
            await finished.commit()
            self._record(call.room, "storage.write", call.participant.name, path,
                         detail=finished.received)
        except RoomError as error:
            if upload is not None:
                upload.abort()
            await _fail_stream(call, error)
            return None
        except BaseException:
            if upload is not None:
                upload.abort()
            raise
        await call.send_chunk(control_close())
        await self._broadcast(call.room, "storage.file.updated", {
            "path": path, "participant_id": call.peer.participant_id,
        })
        return None

    async def download(self, call: Call) -> Content | None:
        reader: BlobReader | None = None
        try:
            start = _binary_headers(await call.next_chunk(CHUNK_TIMEOUT), "start")
            call.note = {"path": start.get("path")}
            path = canonical_file(start.get("path"))
            chunk_size = start.get("chunk_size") or DEFAULT_DOWNLOAD_CHUNK
            if not isinstance(chunk_size, int) or chunk_size <= 0:
                raise RoomError(INVALID_REQUEST, f"chunk_size must be positive, not {chunk_size!r}")
            chunk_size = min(chunk_size, MAX_DOWNLOAD_CHUNK)
            _check(call, "read", path)
            # Opened, not read: a download that is never pulled holds no bytes in memory.
            row, reader = self._storage.open_file(call.room, path)
            await call.open_stream()
            await call.send_chunk(binary_content({
                "kind": "start", "name": basename(path), "mime_type": row.mime_type,
                "size": reader.size,
            }))
            await _serve_pulls(call, reader, chunk_size)
        except RoomError as error:
            await _fail_stream(call, error)
            return None
        finally:
            if reader is not None:
                reader.close()
        await call.send_chunk(control_close())
        return None


async def _pull(
    call: Call, upload: Upload, check_size: Callable[[int], None], guard: WriteGuard | None
) -> None:
    """Pull the upload's bytes into its blob, ``PULLS_AHEAD`` pulls in flight at a time so
    the client always has one to answer; at most that many pieces are held in memory."""
    size = upload.size
    asked = 0
    in_flight = 0
    while True:
        if guard is not None:
            guard.received(upload.received)
        while in_flight < PULLS_AHEAD and (size is None or asked < size):
            wanted = PULL_CHUNK_SIZE if size is None else min(PULL_CHUNK_SIZE, size - asked)
            await call.send_chunk(binary_content({"kind": "pull", "chunk_size": wanted}))
            asked += wanted
            in_flight += 1
        if not in_flight:
            return
        chunk = await call.next_chunk(CHUNK_TIMEOUT)
        in_flight -= 1
        if chunk.type == "control" and chunk.header.get("method") == "close":
            if size is not None:
                raise RoomError(
                    INVALID_REQUEST,
                    f"upload ended after {upload.received} of its announced {size} bytes",
                )
            return
        _binary_headers(chunk, "data")
        check_size(upload.received + len(chunk.payload))  # before the chunk is stored
        if size is not None and upload.received + len(chunk.payload) > size:
            raise RoomError(INVALID_REQUEST, f"upload sent more than its announced {size} bytes")
        payload = chunk.payload if guard is None else guard.take(upload.received, chunk.payload)
        await upload.write(payload)


async def _serve_pulls(call: Call, reader: BlobReader, chunk_size: int) -> None:
    """Answer each pull with the next ``chunk_size`` bytes, read from the blob a block
    ahead (nothing is read before the first pull)."""
    blocks = reader.blocks()
    block = memoryview(b"")
    sent = 0
    try:
        while sent < reader.size:
            _binary_headers(await call.next_chunk(CHUNK_TIMEOUT), "pull")
            if not block:
                block = memoryview(await anext(blocks))
            piece = bytes(block[:chunk_size])
            block = block[len(piece):]
            await call.send_chunk(binary_content({"kind": "data"}, piece))
            sent += len(piece)
    finally:
        await blocks.aclose()
