"""The three clients the benchmark drives, behind one small interface: our ``RoomClient``,
the real MeshAgent SDK's ``RoomClient`` (both against ``localmesh serve``), and redis-py's
asyncio client against ``redis-server`` (LPUSH to send, BRPOP/RPOP to receive: FIFO)."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Protocol

from bench.procs import Localmesh


class QueueClient(Protocol):
    async def send(self, queue: str, message: Any) -> None: ...
    async def receive(self, queue: str, wait: bool = True) -> Any: ...
    async def close(self) -> None: ...


def participant_token(server: Localmesh, room: str, name: str) -> str:
    from meshagent.api import ApiScope, ParticipantToken

    token = ParticipantToken(name=name)
    token.add_room_grant(room)
    token.add_api_grant(ApiScope.agent_default())
    return token.to_jwt(api_key=server.api_key)


class Ours:
    """localmesh's own client (``localmesh.worker.RoomClient``)."""

    def __init__(self, room: Any) -> None:
        self._room = room

    @classmethod
    async def connect(cls, server: Localmesh, room: str, name: str) -> Ours:
        from localmesh.worker import RoomClient

        client = RoomClient(server.url, room, participant_token(server, room, name), reconnect=False)
        await client.connect()
        return cls(client)

    async def send(self, queue: str, message: Any) -> None:
        await self._room.queues.send(queue, message)

    async def receive(self, queue: str, wait: bool = True) -> Any:
        return await self._room.queues.receive(queue, wait=wait)

    @property
    def storage(self) -> Any:
        return self._room.storage

    async def close(self) -> None:
        await self._room.close()


class Sdk:
    """The real MeshAgent SDK (meshagent.api.RoomClient)."""

    def __init__(self, room: Any) -> None:
        self._room = room

    @classmethod
    async def connect(cls, server: Localmesh, room: str, name: str) -> Sdk:
        from meshagent.api import RoomClient
        from meshagent.api.websocket_protocol import WebSocketClientProtocol

        protocol = WebSocketClientProtocol(
            url=server.room_url(room), token=participant_token(server, room, name))
        client = RoomClient(protocol_factory=protocol.create_factory())
        await client.__aenter__()
        return cls(client)

    async def send(self, queue: str, message: Any) -> None:
        await self._room.queues.send(name=queue, message=message)

    async def receive(self, queue: str, wait: bool = True) -> Any:
        return await self._room.queues.receive(name=queue, wait=wait)

    @property
    def storage(self) -> Any:
        return self._room.storage

    async def close(self) -> None:
        await self._room.__aexit__(None, None, None)


class Redis:
    """redis-py's asyncio client: one connection, as a room client has one websocket."""

    def __init__(self, connection: Any) -> None:
        self._redis = connection

    @classmethod
    async def connect(cls, port: int) -> Redis:
        import redis.asyncio as redis

        pool = redis.ConnectionPool(host="127.0.0.1", port=port, max_connections=1)
        connection = redis.Redis(connection_pool=pool)
        await connection.ping()
        return cls(connection)

    async def send(self, queue: str, message: Any) -> None:
        await self._redis.lpush(queue, json.dumps(message))

    async def receive(self, queue: str, wait: bool = True) -> Any:
        if wait:
            found = await self._redis.brpop([queue], timeout=30)
            return None if found is None else json.loads(found[1])
        found = await self._redis.rpop(queue)
        return None if found is None else json.loads(found)

    async def send_many(self, queue: str, messages: list[Any]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for message in messages:
            pipe.lpush(queue, json.dumps(message))
        await pipe.execute()

    async def receive_many(self, queue: str, count: int) -> list[Any]:
        pipe = self._redis.pipeline(transaction=False)
        for _ in range(count):
            pipe.rpop(queue)
        return [None if found is None else json.loads(found) for found in await pipe.execute()]

    async def close(self) -> None:
        await self._redis.aclose()


async def send_many(client: Any, queue: str, messages: list[Any]) -> None:
    """``messages`` all in flight at once (pipelined), on one connection."""
    if isinstance(client, Redis):
        await client.send_many(queue, messages)
    else:
        await asyncio.gather(*(client.send(queue, message) for message in messages))


async def receive_many(client: Any, queue: str, count: int) -> list[Any]:
    if isinstance(client, Redis):
        return await client.receive_many(queue, count)
    return list(await asyncio.gather(*(client.receive(queue, wait=False) for _ in range(count))))
