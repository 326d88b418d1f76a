"""The room's ``storage`` toolkit: plain calls, and the streamed upload and download."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any, Protocol

from localmesh.protocol.error_codes import UNEXPECTED_RESPONSE_TYPE
from localmesh.protocol.wire import Content, binary_content, guess_mime_type
from localmesh.worker.errors import RoomError
from localmesh.worker.streams import ToolStream

DOWNLOAD_CHUNK_SIZE = 65536  # what the SDK asks for
LARGE_DOWNLOAD_CHUNK = 1024 * 1024  # from a server that takes big packets (localmesh)
DEFAULT_PULL_SIZE = 65536


@dataclass(frozen=True)
class StorageEntry:
    name: str
    is_folder: bool
    size: int | None = None
    created_at: str | None = None
    updated_at: str | None = None

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> StorageEntry:
        return cls(
            name=str(value["name"]),
            is_folder=bool(value["is_folder"]),
            size=value.get("size"),
            created_at=value.get("created_at"),
            updated_at=value.get("updated_at"),
        )

    def to_json(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if value is not None}


@dataclass(frozen=True)
class DownloadedFile:
    name: str
    mime_type: str
    data: bytes

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


def _protocol_error(message: str) -> RoomError:
    return RoomError(message, UNEXPECTED_RESPONSE_TYPE)


class ToolCaller(Protocol):
    """What storage needs of a room client (``RoomClient`` is one)."""

    async def invoke(self, toolkit: str, tool: str, arguments: Any = None) -> Content: ...

    async def invoke_json(self, toolkit: str, tool: str, arguments: dict[str, Any]) -> Any: ...

    async def open_tool_stream(self, toolkit: str, tool: str) -> ToolStream: ...


class StorageClient:
    def __init__(self, room: ToolCaller) -> None:
        self._room = room

    async def exists(self, path: str) -> bool:
        value = await self._room.invoke_json("storage", "exists", {"path": path})
        return bool(value["exists"])

    async def stat(self, path: str) -> StorageEntry | None:
        """The file or folder at ``path``, or ``None`` if there is nothing there."""
        value = await self._room.invoke_json("storage", "stat", {"path": path})
        if not value.get("exists"):
            return None
        return StorageEntry.from_json(value)

    async def list(self, path: str = "") -> list[StorageEntry]:
        value = await self._room.invoke_json("storage", "list", {"path": path})
        return [StorageEntry.from_json(entry) for entry in value["files"]]

    async def move(
        self, source_path: str, destination_path: str, *, overwrite: bool = False
    ) -> None:
        await self._room.invoke(
            "storage",
            "move",
            {"source_path": source_path, "destination_path": destination_path,
             "overwrite": overwrite},
        )

    async def delete(self, path: str, *, recursive: bool | None = None) -> None:
        await self._room.invoke("storage", "delete", {"path": path, "recursive": recursive})

    async def download_url(self, path: str) -> str:
        value = await self._room.invoke_json(
            "storage", "download_url", {"path": path, "download": None}
        )
        return str(value["url"])

    async def upload(
        self,
        path: str,
        data: bytes,
        overwrite: bool = False,
        *,
        name: str | None = None,
        mime_type: str | None = None,
    ) -> None:
        """Write ``data`` to ``path``: the server pulls chunks until it has ``len(data)`` bytes."""
        name = name or posixpath.basename(path.rstrip("/"))
        start = {
            "kind": "start",
            "path": path,
            "overwrite": overwrite,
            "name": name,
            "mime_type": mime_type or guess_mime_type(name),
            "size": len(data),
        }
        async with await self._room.open_tool_stream("storage", "upload") as stream:
            await stream.send(binary_content(start))
            await stream.opened()
            await _serve_pulls(stream, data)

    async def download(self, path: str) -> DownloadedFile:
        async with await self._room.open_tool_stream("storage", "download") as stream:
            chunk_size = DOWNLOAD_CHUNK_SIZE if stream.packet_size <= 1024 else LARGE_DOWNLOAD_CHUNK
            await stream.send(binary_content({"kind": "start", "path": path, "chunk_size": chunk_size}))
            await stream.opened()
            start = await stream.receive()
            headers = _binary_headers(start, "start")
            size = headers.get("size")
            if not isinstance(size, int) or size < 0:
                raise _protocol_error(f"download start has no valid size: {size!r}")
            parts: list[bytes] = []
            received = 0
            while received < size:
                await stream.send(binary_content({"kind": "pull"}))
                chunk = await stream.receive()
                _binary_headers(chunk, "data")
                received += len(chunk.payload)
                if received > size:
                    raise _protocol_error(f"download sent more than the announced {size} bytes")
                parts.append(chunk.payload)
            end = await stream.receive()
            if end.type != "control" or end.header.get("method") != "close":
                raise _protocol_error(f"expected the download to close, got {end.type} content")
            return DownloadedFile(
                name=str(headers.get("name") or posixpath.basename(path)),
                mime_type=str(headers.get("mime_type") or "application/octet-stream"),
                data=b"".join(parts),
            )


async def _serve_pulls(stream: ToolStream, data: bytes) -> None:
    """Answer the server's pulls with the next bytes until it closes the stream."""
    offset = 0
    while True:
        chunk = await stream.receive()
        if chunk.type == "control" and chunk.header.get("method") == "close":
            return
        headers = _binary_headers(chunk, "pull")
        size = headers.get("chunk_size") or DEFAULT_PULL_SIZE
        if not isinstance(size, int) or size <= 0:
            raise _protocol_error(f"upload pull has an invalid chunk_size: {size!r}")
        if offset >= len(data):
            await stream.close_input()  # nothing left: the request-side close says so
            continue
        await stream.send(binary_content({"kind": "data"}, data[offset : offset + size]))
        offset += size


def _binary_headers(content: Any, kind: str) -> dict[str, Any]:
    headers = content.header.get("headers") if content.type == "binary" else None
    if not isinstance(headers, dict) or headers.get("kind") != kind:
        raise _protocol_error(f"expected a binary {kind!r} chunk, got {content.header}")
    return headers
