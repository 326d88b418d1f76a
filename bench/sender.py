"""The other process of the wake-up measurement: sends one message per line on stdin.

    python -m bench.sender ours|sdk|redis URL-OR-PORT API-KEY QUEUE

Each message carries ``time.perf_counter()`` at the start of its send; CLOCK_MONOTONIC is
one clock for every process of the machine, so the receiver can subtract it from its own.
"""

from __future__ import annotations

import asyncio
import sys
import time

from bench.clients import Ours, Redis, Sdk
from bench.procs import Localmesh


async def main(kind: str, where: str, api_key: str, queue: str) -> None:
    if kind == "redis":
        client = await Redis.connect(int(where))
    else:
        server = Localmesh("localmesh", None, int(where), api_key=api_key)  # type: ignore[arg-type]
        client = await (Ours if kind == "ours" else Sdk).connect(server, "bench-wake", "sender")
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("ready", flush=True)
    try:
        while line := await reader.readline():  # bounded: the parent closes stdin when done
            await client.send(queue, {"sent": time.perf_counter(), "round": int(line)})
            print("sent", flush=True)
    finally:
        await client.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
