"""The ``storage`` toolkit on the wire: grant checks, streamed upload/download, file events."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from localmesh.emulator.calls import Call, Handler
from localmesh.emulator.errors import INVALID_REQUEST, RoomError
from localmesh.emulator.paths import basename
from localmesh.emulator.storage import Storage, canonical, canonical_file
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

PULL_CHUNK_SIZE = 65536
MAX_DOWNLOAD_CHUNK = 1024 * 1024
CHUNK_TIMEOUT = 60.0  # a client that stops streaming mid-call frees the call after this

Broadcast = Callable[[str, str, dict[str, Any]], Awaitable[None]]
DownloadUrl = Callable[[Call, str], str]
# (room, participant, path) -> the guard of a fail_write fault aimed at this write, if any.
WriteGuards = Callable[[str, str | None, str], "WriteGuard | None"]


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
    if not call.opened:
        await call.open_stream()
    await call.send_chunk(Content({"type": "error", "text": error.message, "code": error.code}))
    await call.send_chunk(control_close())


class StorageToolkit:
    name = "storage"

    def __init__(self, storage: Storage, broadcast: Broadcast, download_url: DownloadUrl,
                 *, max_upload_bytes: int | None = None, write_guard: WriteGuards | None = None) -> None:
        self._storage = storage
        self._max_upload = max_upload_bytes
        self._broadcast = broadcast
        self._download_url = download_url
        self._write_guard = write_guard or (lambda room, participant, path: None)

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
        try:
            start = _binary_headers(await call.next_chunk(CHUNK_TIMEOUT), "start")
            path = canonical_file(start.get("path"))
            overwrite = bool(start.get("overwrite", False))
            size = start.get("size")
            if size is not None and (not isinstance(size, int) or size < 0):
                raise RoomError(INVALID_REQUEST, f"upload size must be a whole number, not {size!r}")
            self._check_upload_size(size or 0)
            _check(call, "write", path)
            await self._storage.check_writable(call.room, path, overwrite)
            mime_type = start.get("mime_type") or guess_mime_type(basename(path))
            if not isinstance(mime_type, str) or not is_valid_unicode(mime_type):
                raise RoomError(INVALID_REQUEST, f"mime_type must be a text string, not {mime_type!r}")
            guard = self._write_guard(call.room, call.participant.name, path)
            await call.open_stream()
            data = await self._pull(call, size, guard)
            if guard is not None:
                guard.complete(len(data))
            await self._storage.write(call.room, path, data, mime_type, overwrite=overwrite)
        except RoomError as error:
            await _fail_stream(call, error)
            return None
        await call.send_chunk(control_close())
        await self._broadcast(call.room, "storage.file.updated", {
            "path": path, "participant_id": call.peer.participant_id,
        })
        return None

    def _check_upload_size(self, size: int) -> None:
        if self._max_upload is not None and size > self._max_upload:
            raise RoomError(
                INVALID_REQUEST,
                f"upload of {size} bytes or more is over the {self._max_upload}-byte limit"
                " (max_upload_bytes)",
            )

    async def _pull(self, call: Call, size: int | None, guard: WriteGuard | None = None) -> bytes:
        data = bytearray()
        while size is None or len(data) < size:
            if guard is not None:
                guard.received(len(data))
            wanted = PULL_CHUNK_SIZE if size is None else min(PULL_CHUNK_SIZE, size - len(data))
            await call.send_chunk(binary_content({"kind": "pull", "chunk_size": wanted}))
            chunk = await call.next_chunk(CHUNK_TIMEOUT)
            if chunk.type == "control" and chunk.header.get("method") == "close":
                if size is not None:
                    raise RoomError(
                        INVALID_REQUEST,
                        f"upload ended after {len(data)} of its announced {size} bytes",
                    )
                break
            _binary_headers(chunk, "data")
            self._check_upload_size(len(data) + len(chunk.payload))  # before keeping the chunk
            data += chunk.payload
            if size is not None and len(data) > size:
                raise RoomError(
                    INVALID_REQUEST, f"upload sent more than its announced {size} bytes"
                )
        return bytes(data)

    async def download(self, call: Call) -> Content | None:
        try:
            start = _binary_headers(await call.next_chunk(CHUNK_TIMEOUT), "start")
            path = canonical_file(start.get("path"))
            chunk_size = start.get("chunk_size") or PULL_CHUNK_SIZE
            if not isinstance(chunk_size, int) or chunk_size <= 0:
                raise RoomError(INVALID_REQUEST, f"chunk_size must be positive, not {chunk_size!r}")
            chunk_size = min(chunk_size, MAX_DOWNLOAD_CHUNK)
            _check(call, "read", path)
            row, data = await self._storage.read(call.room, path)
            await call.open_stream()
            await call.send_chunk(binary_content({
                "kind": "start", "name": basename(path), "mime_type": row.mime_type,
                "size": len(data),
            }))
            sent = 0
            while sent < len(data):
                _binary_headers(await call.next_chunk(CHUNK_TIMEOUT), "pull")
                piece = data[sent : sent + chunk_size]
                await call.send_chunk(binary_content({"kind": "data"}, piece))
                sent += len(piece)
        except RoomError as error:
            await _fail_stream(call, error)
            return None
        await call.send_chunk(control_close())
        return None
