"""The room client against the real emulator: requests, queues, storage streams, errors."""

from __future__ import annotations

import asyncio

import pytest

from localmesh.worker.errors import RoomClosed, RoomError
from localmesh.worker.room import RoomClient, room_websocket_url


def test_websocket_url_from_http_and_https_bases() -> None:
    assert room_websocket_url("http://127.0.0.1:8765/", "r") == "ws://127.0.0.1:8765/rooms/r"
    assert room_websocket_url("https://example.test", "r") == "wss://example.test/rooms/r"


async def test_handshake_gives_the_session(room: RoomClient, room_name: str) -> None:
    assert room.connected
    assert room.session.room_name == room_name
    assert room.participant_name == "tester"
    assert room.participant_id


async def test_queue_round_trip_and_listing(room: RoomClient) -> None:
    await room.queues.send("jobs", {"prompt": "one"})
    await room.queues.send("jobs", {"prompt": "two"})
    assert [(q.name, q.size) for q in await room.queues.list()] == [("jobs", 2)]
    assert await room.queues.receive("jobs") == {"prompt": "one"}
    await room.queues.drain("jobs")
    assert await room.queues.receive("jobs", wait=False) is None


async def test_long_poll_is_answered_by_a_send_on_the_same_connection(room: RoomClient) -> None:
    receiving = asyncio.create_task(room.queues.receive("jobs", wait=True))
    await room.queues.send("jobs", {"n": 1})
    assert await asyncio.wait_for(receiving, 5) == {"n": 1}


async def test_large_queue_message_spans_many_packets(room: RoomClient) -> None:
    message = {"blob": "x" * 50_000}
    await room.queues.send("big", message)
    assert await room.queues.receive("big", wait=False) == message


async def test_server_error_carries_its_code(room: RoomClient) -> None:
    with pytest.raises(RoomError) as raised:
        await room.queues.send("missing", {"a": 1}, create=False)
    assert raised.value.code == 5001


@pytest.mark.parametrize("size", [0, 11, 65_536, 200_000])
async def test_upload_then_download_round_trips(room: RoomClient, size: int) -> None:
    data = bytes(i % 251 for i in range(size))
    await room.storage.upload("folder/file.bin", data, overwrite=True)
    downloaded = await room.storage.download("folder/file.bin")
    assert downloaded.data == data
    assert downloaded.name == "file.bin"
    stat = await room.storage.stat("folder/file.bin")
    assert stat is not None and stat.size == size and not stat.is_folder


async def test_storage_listing_moving_and_deleting(room: RoomClient) -> None:
    await room.storage.upload("a/one.txt", b"1")
    assert await room.storage.exists("a")
    assert [e.name for e in await room.storage.list("a")] == ["one.txt"]
    assert await room.storage.list("nowhere") == []
    await room.storage.move("a/one.txt", "b/two.txt")
    assert not await room.storage.exists("a/one.txt")
    assert (await room.storage.download("b/two.txt")).text == "1"
    assert (await room.storage.download_url("b/two.txt")).startswith("http")
    await room.storage.delete("b/two.txt")
    assert await room.storage.stat("b/two.txt") is None


async def test_upload_without_overwrite_refuses_an_existing_file(room: RoomClient) -> None:
    await room.storage.upload("x.txt", b"first")
    with pytest.raises(RoomError) as raised:
        await room.storage.upload("x.txt", b"second", overwrite=False)
    assert raised.value.code == 3005
    assert (await room.storage.download("x.txt")).data == b"first"


async def test_download_of_a_missing_file_raises_not_found(room: RoomClient) -> None:
    with pytest.raises(RoomError) as raised:
        await room.storage.download("nope.txt")
    assert raised.value.code == 3001


async def test_developer_log_reaches_the_room(server, room: RoomClient, room_name: str) -> None:
    await room.developer.log("test.event", {"ok": True})
    assert any("test.event" in str(entry) for entry in server.developer_logs(room_name))


async def test_concurrent_requests_share_one_connection(room: RoomClient) -> None:
    await asyncio.gather(*(room.storage.upload(f"c/{i}.txt", b"x" * 3000) for i in range(10)))
    assert len(await room.storage.list("c")) == 10


async def test_requests_after_close_raise_room_closed(connect) -> None:
    client = await connect("closer")
    await client.close()
    with pytest.raises(RoomClosed):
        await client.queues.list()


async def test_a_bad_token_is_refused_at_once(server, room_name: str) -> None:
    client = RoomClient(server.url, room_name, "not-a-jwt")
    with pytest.raises(RoomClosed) as refused:
        await client.connect()
    # The emulator's reason reaches the user, not just the status.
    assert "403" in str(refused.value) and "not a valid JWT" in str(refused.value)
