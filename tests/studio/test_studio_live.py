"""The live stream: the topics that changed arrive as server-sent events, and an open stream
never holds up the server's stop."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from localmesh.emulator import RoomServer
from localmesh.emulator.studio.live import fingerprint

ROOM = "r"


class Stream:
    """The events of one open ``/studio/api/live`` response, read as they come."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.aiter_lines()

    async def next_event(self, timeout: float = 5.0) -> tuple[str, dict]:
        kind = data = None
        async with asyncio.timeout(timeout):
            async for line in self._lines:
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    data = json.loads(line[6:])
                elif line == "" and kind is not None:
                    return kind, data or {}
        raise AssertionError("the stream ended")

    async def topics(self, wanted: str, timeout: float = 5.0) -> list[str]:
        """Read change events until one names ``wanted``; return its topics."""
        async with asyncio.timeout(timeout):
            while True:
                kind, data = await self.next_event(timeout)
                if kind == "change" and wanted in data["topics"]:
                    return data["topics"]


async def open_stream(
    client: httpx.AsyncClient, server: RoomServer, room: str | None
) -> AsyncIterator[Stream]:
    params = {"room": room} if room else {}
    headers = {"authorization": f"Bearer {server.api_key}"}
    async with client.stream("GET", "/studio/api/live", params=params, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = Stream(response)
        assert await stream.next_event() == ("ready", {"room": room})
        yield stream


@pytest.fixture
async def live(localmesh_server: RoomServer):
    async with httpx.AsyncClient(base_url=localmesh_server.url, timeout=None) as client:
        streams = []

        async def opened(room: str | None = ROOM) -> Stream:
            generator = open_stream(client, localmesh_server, room)
            streams.append(generator)
            return await generator.__anext__()

        yield opened
        for generator in streams:
            await generator.aclose()


@pytest.mark.localmesh_strict(queued_messages=False, armed_faults=False)  # changes to see, on purpose
async def test_each_kind_of_change_names_its_topic(live, localmesh_server, localmesh_room) -> None:
    stream = await live()
    state = localmesh_server.state
    await state.queues.send(ROOM, "tasks", {"n": 1})
    assert await stream.topics("queues") == ["queues"]
    await state.storage.write(ROOM, "a.txt", b"x", "text/plain", overwrite=False)
    assert await stream.topics("storage") == ["storage"]
    alice = await localmesh_room(ROOM, name="alice")
    await stream.topics("participants")
    await alice.close()
    await stream.topics("participants")
    localmesh_server.faults.fail("queues", "send")
    assert await stream.topics("faults") == ["faults"]
    localmesh_server.llm.player(ROOM).play({"input": "hi"})
    # An LLM exchange is a timeline event too: the Activity view changes with it.
    assert await stream.topics("llm") == ["activity", "llm"]


async def test_a_stream_hears_only_its_room(live, localmesh_server) -> None:
    stream = await live()
    await localmesh_server.state.queues.send("elsewhere", "tasks", 1)
    await localmesh_server.state.queues.send(ROOM, "mine", 1)
    # The first change this stream reports is its own room's queue, not the other room's.
    kind, data = await stream.next_event()
    assert (kind, data) == ("change", {"topics": ["queues"]})


async def test_the_room_list_stream_sees_new_rooms(live, localmesh_server) -> None:
    stream = await live(None)
    await localmesh_server.state.queues.send("new-room", "tasks", 1)
    assert "rooms" in await stream.topics("rooms")


async def test_an_open_stream_ends_when_the_server_stops(tmp_path) -> None:
    server = RoomServer(data_dir=tmp_path / "data")
    await server.start()
    async with httpx.AsyncClient(base_url=server.url, timeout=None) as client:
        generator = open_stream(client, server, ROOM)
        stream = await generator.__anext__()
        async with asyncio.timeout(5):
            await server.stop()  # would wait for ever if the stream kept its response open
        with pytest.raises((AssertionError, httpx.HTTPError)):
            await stream.next_event(timeout=5)
        await generator.aclose()


async def test_the_activity_topic_follows_its_own_rooms_timeline(
    live, localmesh_server, localmesh_room
) -> None:
    state = localmesh_server.state
    before = (await fingerprint(state, ROOM))["activity"]
    await localmesh_room("elsewhere", name="bob")
    assert (await fingerprint(state, ROOM))["activity"] == before  # another room's events
    stream = await live()
    alice = await localmesh_room(ROOM, name="alice")
    assert "activity" in await stream.topics("participants")
    await alice.storage.upload("a.txt", b"x", overwrite=True)
    assert "activity" in await stream.topics("storage")
    state.timeline.clear()
    assert await stream.topics("activity") == ["activity"]  # forgotten events change it too
