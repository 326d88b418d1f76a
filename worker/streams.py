"""One streamed tool call (protocol §4.4): request chunks out, response chunks in."""

from __future__ import annotations

import asyncio
import contextlib

from localmesh.protocol.error_codes import UNEXPECTED_RESPONSE_TYPE
from localmesh.protocol.wire import Content, control_close
from localmesh.worker.connection import ChunkStream, Connection, raise_for_error
from localmesh.worker.errors import RoomError


class ToolStream:
    """Both directions of one streamed tool call, keyed by its ``tool_call_id``."""

    def __init__(
        self,
        connection: Connection,
        tool_call_id: str,
        reply: asyncio.Future[Content],
        chunks: ChunkStream,
    ) -> None:
        self._connection = connection
        self.tool_call_id = tool_call_id
        self._reply = reply
        self._chunks = chunks
        self._input_closed = False

    async def __aenter__(self) -> ToolStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        # The SDK closes its input lazily, after the call ended; the server ignores it then.
        with contextlib.suppress(RoomError):
            await self.close_input()
        self._connection.close_stream(self.tool_call_id)
        if not self._reply.done():
            self._reply.cancel()

    @property
    def packet_size(self) -> int:
        """Data bytes per packet on this connection (more than 1024 only with localmesh)."""
        return self._connection.packet_size

    async def send(self, content: Content) -> None:
        await self._connection.send(
            "room.tool_call_request_chunk",
            {"tool_call_id": self.tool_call_id, "chunk": content.header},
            content.payload,
        )

    async def close_input(self) -> None:
        if not self._input_closed:
            self._input_closed = True
            await self.send(control_close())

    async def opened(self) -> None:
        """Wait for the server's reply; it must be ``control open`` (an error raises)."""
        reply = raise_for_error(await self._reply)
        if reply.type != "control" or reply.header.get("method") != "open":
            raise RoomError(
                f"expected the stream to open, got {reply.type} content",
                UNEXPECTED_RESPONSE_TYPE,
            )

    async def receive(self) -> Content:
        """The next response chunk. An ``error`` chunk or a failed close raises ``RoomError``."""
        chunk = raise_for_error(await self._chunks.next())
        if chunk.type == "control" and chunk.header.get("method") == "close":
            status = chunk.header.get("status_code", 1000)
            if status not in (None, 1000):
                raise RoomError(str(chunk.header.get("message") or "stream failed"), status)
        return chunk
