"""The floor: what the least Python server costs per request here, next to redis-server.

    .venv/bin/python -m bench.floor [--requests N] [--rounds N]

Issue 13 asks for a server CPU per queue operation within 3x redis-server's. This measures
what no Python server can go below on this machine, in the same run as Redis: a bare
asyncio TCP server in its own process that answers each request (a length-prefixed 150-byte
message) with one ``transport.write`` from ``data_received`` (no websocket, no JSON, no
tasks), and the same server also inserting each request into SQLite (WAL,
``synchronous=NORMAL``) and committing before it answers: a durable queue's least work.
The client sends one request at a time (raw asyncio for the floors; redis-py for Redis, LPUSH
and BRPOP alternating, as in the benchmark's sequential rounds). Prints each server's CPU per
request (from /proc) and requests/s; medians over interleaved rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sqlite3
import statistics
import sys
import tempfile
from pathlib import Path

from bench.clients import Redis
from bench.procs import ServerProcess, free_port, run_redis, run_server

PAYLOAD = b"x" * 150


# ---------------------------------------------------------------- the floor servers


class _Echo(asyncio.Protocol):
    def __init__(self, db: sqlite3.Connection | None) -> None:
        self._db = db
        self._buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= 4:
            size = int.from_bytes(self._buffer[:4], "big")
            if len(self._buffer) < 4 + size:
                return
            request, self._buffer = self._buffer[4 : 4 + size], self._buffer[4 + size :]
            if self._db is not None:
                self._db.execute("INSERT INTO messages (body) VALUES (?)", (request,))
                self._db.commit()
            self._transport.write(len(request).to_bytes(4, "big") + request)  # type: ignore[attr-defined]


async def _serve(port: int, database: str | None) -> None:
    db = None
    if database is not None:
        db = sqlite3.connect(database)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE messages (id INTEGER PRIMARY KEY, body BLOB)")
    server = await asyncio.get_running_loop().create_server(lambda: _Echo(db), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def _run_floor(folder: Path, durable: bool) -> contextlib.AbstractContextManager[ServerProcess]:
    port = free_port()
    command = [sys.executable, "-m", "bench.floor", "--serve", str(port)]
    if durable:
        command += ["--database", str(folder / "floor.db")]
    return run_server("the floor server", command, port, cwd=Path(__file__).resolve().parents[1])


# ---------------------------------------------------------------- the clients


class _Raw:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    async def request(self, index: int) -> None:
        self._writer.write(len(PAYLOAD).to_bytes(4, "big") + PAYLOAD)
        size = int.from_bytes(await self._reader.readexactly(4), "big")
        assert await self._reader.readexactly(size) == PAYLOAD

    async def close(self) -> None:
        self._writer.close()
        await self._writer.wait_closed()


class _RedisRequests:
    def __init__(self, client: Redis) -> None:
        self._client = client

    async def request(self, index: int) -> None:
        if index % 2 == 0:
            await self._client.send("floor", {"i": index, "pad": "x" * 100})
        else:
            assert await self._client.receive("floor") is not None  # BRPOP, as the benchmark

    async def close(self) -> None:
        await self._client.close()


async def _measure(servers: dict[str, ServerProcess], requests: int, rounds: int) -> None:
    clients = {}
    for name, server in servers.items():
        if name == "redis-server":
            clients[name] = _RedisRequests(await Redis.connect(server.port))
        else:
            clients[name] = _Raw(*await asyncio.open_connection("127.0.0.1", server.port))
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in servers}
    loop = asyncio.get_running_loop()
    try:
        for index in range(rounds + 1):
            names = list(servers)
            order = names[index % len(names):] + names[: index % len(names)]
            for name in order:
                server, client = servers[name], clients[name]
                cpu, wall = server.cpu_seconds(), loop.time()
                for request in range(requests):
                    await client.request(request)
                if index:  # the first round warms up
                    results[name].append(((server.cpu_seconds() - cpu) / requests * 1e6,
                                          requests / (loop.time() - wall)))
    finally:
        for client in clients.values():
            await client.close()
    redis_cpu = statistics.median(cpu for cpu, _ in results["redis-server"])
    redis_rate = statistics.median(rate for _, rate in results["redis-server"])
    print(f"{'server':<44} {'CPU/request':>12} {'÷ Redis':>8} {'requests/s':>11} {'÷ Redis':>8}")
    for name, runs in results.items():
        cpu = statistics.median(c for c, _ in runs)
        rate = statistics.median(r for _, r in runs)
        print(f"{name:<44} {cpu:>10.1f}µs {cpu / redis_cpu:>7.1f}× {rate:>11,.0f} {rate / redis_rate:>7.2f}×")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--database", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        asyncio.run(_serve(args.serve, args.database))
        return
    with tempfile.TemporaryDirectory() as folder, contextlib.ExitStack() as stack:
        servers = {
            "redis-server": stack.enter_context(run_redis(Path(folder))),
            "Python floor: asyncio echo": stack.enter_context(_run_floor(Path(folder), False)),
            "Python floor: echo + SQLite insert, commit": stack.enter_context(
                _run_floor(Path(folder), True)),
        }
        asyncio.run(_measure(servers, args.requests, args.rounds))


if __name__ == "__main__":
    main()
