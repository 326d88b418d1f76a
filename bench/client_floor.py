"""Our client's CPU per queue operation next to its floor, in one run (not a test; run by hand).

    .venv/bin/python -m bench.client_floor [pairs] [rounds]

The floor is what any asyncio client of this server spends per request: build the request's
bytes (the same encoders as ``RoomClient``: envelope JSON, packets, a fresh mask per frame),
one ``transport.write``, one future resolved when the reply's frames are in (their lengths
read, nothing decoded). It runs on a second connection of the same ``localmesh serve``
(handshaken by our client, then taken over by a minimal protocol), rounds interleaved with
``RoomClient``'s: sequential ``queues.send`` + ``queues.receive`` pairs, CPU of this process
(``time.process_time``). The difference is what ``RoomClient`` costs above the floor.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.clients import Ours
from bench.procs import run_localmesh
from localmesh.protocol.wire import LARGE_PACKET_SIZE
from localmesh.worker.codec import pack_request
from localmesh.worker.frames import masked_message

PAIRS = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 5


class FloorProtocol(asyncio.Protocol):
    """Counts the server's frames (none is longer than 64 KiB here) and resolves the
    waiting future once a reply's two frames are in."""

    def __init__(self) -> None:
        self.reply: asyncio.Future[None] | None = None
        self._held = b""
        self._frames = 0

    def data_received(self, data: bytes) -> None:
        data = self._held + data
        position = 0
        while len(data) - position >= 2:
            length, header = data[position + 1] & 0x7F, 2
            if length == 126:
                length, header = int.from_bytes(data[position + 2 : position + 4], "big"), 4
            if len(data) - position < header + length:
                break
            position += header + length
            self._frames += 1
        self._held = data[position:]
        if self._frames >= 2 and self.reply is not None:
            self._frames -= 2
            self.reply.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.reply is not None and not self.reply.done():
            self.reply.set_exception(ConnectionError("the floor's connection dropped"))


class Floor:
    def __init__(self, transport: asyncio.Transport, protocol: FloorProtocol) -> None:
        self._transport, self._protocol = transport, protocol
        self._loop = asyncio.get_running_loop()
        self._next_id = 1 << 32  # far from the ids the handshaking client used
        self._prefix = "f" * 16

    async def call(self, tool: str, arguments: dict[str, Any]) -> None:
        self._next_id += 1
        header = {"toolkit": "queues", "tool": tool, "arguments": {"type": "json", "json": arguments},
                  "tool_call_id": f"{self._prefix}{self._next_id:016x}", "participant_id": None,
                  "on_behalf_of_id": None}
        self._protocol.reply = self._loop.create_future()
        self._transport.write(masked_message(
            self._next_id, "room.invoke_tool", pack_request(header), LARGE_PACKET_SIZE))
        await self._protocol.reply


async def floor_pairs(floor: Floor, pairs: int) -> None:
    for i in range(pairs):
        await floor.call("send", {"name": "floor", "create": True, "message": {"i": i}})
        await floor.call("receive", {"name": "floor", "create": True, "wait": True})


async def client_pairs(client: Ours, pairs: int) -> None:
    for i in range(pairs):
        await client.send("q", {"i": i})
        await client.receive("q")


async def cpu_per_op(run: Any, pairs: int) -> float:
    cpu = time.process_time()
    await run(pairs)
    return (time.process_time() - cpu) / (2 * pairs) * 1e6


async def main(server: Any) -> None:
    client = await Ours.connect(server, "floor", "client")
    taken = await Ours.connect(server, "floor", "floor")
    connection = await taken._room.connection()
    transport = connection._ws.transport
    protocol = FloorProtocol()
    transport.set_protocol(protocol)
    floor = Floor(transport, protocol)
    try:
        await client_pairs(client, 300)  # warm up both
        await floor_pairs(floor, 300)
        ours, least = [], []
        for _ in range(ROUNDS):
            ours.append(await cpu_per_op(lambda n: client_pairs(client, n), PAIRS))
            least.append(await cpu_per_op(lambda n: floor_pairs(floor, n), PAIRS))
        print(f"client CPU per op, sequential, {ROUNDS} interleaved rounds of {PAIRS} pairs:")
        print(f"  RoomClient: min {min(ours):.1f} µs, median {statistics.median(ours):.1f} µs")
        print(f"  floor:      min {min(least):.1f} µs, median {statistics.median(least):.1f} µs")
    finally:
        transport.abort()
        await client.close()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder, run_localmesh(Path(folder)) as server:
        asyncio.run(main(server))
