"""Each fault kind on a live emulator, with the real MeshAgent SDK as the client (our client
where its reconnects are the point): the fault fires, is counted, and afterwards nothing is
lost: queue histories pass the delivery checker, files hold every byte they held before."""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
from pathlib import Path

import httpx
import pytest
from meshagent.api import RoomException

from localmesh.emulator.faults import FaultFired
from localmesh.fixtures.delivery import DeliveryHistory, check_delivery
from localmesh.worker import Backoff, ConnectionLost, RoomClient
from localmesh.worker.connection import HandshakeRefused

TIMEOUT = 10.0


def message_id(message: dict) -> str:
    return message["id"]


async def send(history: DeliveryHistory, room, queue: str, key: str, client: str) -> bool:
    """Send one message, recorded; False when the send failed."""
    try:
        await history.send(queue, key, room.queues.send(name=queue, message={"id": key}), client)
    except RoomException:
        return False
    return True


async def drain(history: DeliveryHistory, room, queue: str, client: str) -> list[str]:
    """Receive until the queue answers empty; the keys received, in order."""
    got = []
    while True:
        message = await history.receive(
            queue, room.queues.receive(name=queue, wait=False), key=message_id, client=client)
        if message is None:
            return got
        got.append(message["id"])


def stored_bytes(server, room: str, path: str) -> bytes | None:
    """The file's bytes as they are on disk, read past the emulator: the blob file that its
    row in SQLite points at."""
    data_dir = Path(server.settings.data_dir)
    with sqlite3.connect(f"file:{data_dir / 'localmesh.db'}?mode=ro", uri=True) as db:
        row = db.execute("SELECT blob FROM files WHERE room = ? AND path = ?", (room, path)).fetchone()
    return None if row is None else (data_dir / "blobs" / row[0]).read_bytes()


def fault_events(server, room: str) -> list[tuple[str | None, str, str]]:
    """The faults fired in ``room``, as its timeline has them: (participant, subject, detail)."""
    return [(e.participant, e.subject, e.detail) for e in server.history.events(room, kind="fault")]


def blob_sizes(server) -> dict[str, int]:
    """Every blob file on disk (a stored version of a file, or one being written), by size."""
    folder = Path(server.settings.data_dir) / "blobs"
    return {entry.name: entry.stat().st_size for entry in os.scandir(folder)}


# ---------------------------------------------------------------- error


async def test_an_error_aimed_at_one_participants_nth_send(localmesh_server, meshagent_room):
    fault = localmesh_server.faults.add(
        "error", toolkit="queues", tool="send", participant="alice", nth=2, code=1008, message="no")
    history = DeliveryHistory()
    async with meshagent_room("r", name="alice") as alice, meshagent_room("r", name="bob") as bob:
        assert [await send(history, bob, "q", f"b{i}", "bob") for i in range(3)] == [True] * 3
        assert [await send(history, alice, "q", f"a{i}", "alice") for i in range(4)] == [
            True, False, True, True]
        got = await drain(history, bob, "q", "bob")
    assert (fault.seen, fault.fired) == (2, 1)  # bob's sends never matched; spent after one
    assert got == ["b0", "b1", "b2", "a0", "a2", "a3"]  # the refused send was not committed
    check_delivery(history).assert_ok()
    assert fault_events(localmesh_server, "r") == [("alice", "queues.send", "error 1008")]


# ---------------------------------------------------------------- delay


async def test_a_delay_holds_one_call_on_the_servers_clock(
    localmesh_server, localmesh_clock, meshagent_room
):
    fault = localmesh_server.faults.add("delay", toolkit="queues", tool="receive", seconds=30)
    history = DeliveryHistory()
    async with meshagent_room("r", name="alice") as room:
        assert await send(history, room, "q", "m1", "alice")
        held = asyncio.create_task(drain(history, room, "q", "alice"))
        async with asyncio.timeout(TIMEOUT):
            await localmesh_clock.until_waiting()  # the receive sleeps on the virtual clock
        # The same connection still serves other calls meanwhile.
        assert await send(history, room, "q", "m2", "alice")
        await localmesh_clock.advance(29.9)
        assert not held.done()
        await localmesh_clock.advance(0.1)
        async with asyncio.timeout(TIMEOUT):
            assert await held == ["m1", "m2"]
    assert fault.fired == 1
    check_delivery(history).assert_ok()
    assert fault_events(localmesh_server, "r") == [("alice", "queues.receive", "delayed 30 s")]


# ---------------------------------------------------------------- drop_reply


async def test_a_reply_cut_mid_message_puts_the_message_back(localmesh_server, meshagent_room):
    # A receive's reply is 2 frames (header + data): cut after the first, the message half out.
    fault = localmesh_server.faults.add(
        "drop_reply", toolkit="queues", tool="receive", participant="worker", after_frames=1)
    history = DeliveryHistory()
    async with meshagent_room("r", name="sender") as sender:
        for i in range(3):
            assert await send(history, sender, "q", f"m{i}", "sender")
    async with meshagent_room("r", name="worker") as worker:
        with pytest.raises(RoomException, match="1006"):
            await drain(history, worker, "q", "worker")
    assert fault.fired == 1
    async with meshagent_room("r", name="worker") as worker:
        assert await drain(history, worker, "q", "worker") == ["m0", "m1", "m2"]
    # Strict: the failed receive may not excuse a loss, because it took nothing.
    check_delivery(history, failed_receive_may_lose=False).assert_ok()
    assert fault_events(localmesh_server, "r") == [
        ("worker", "queues.receive", "cut the connection after 1 reply frame(s)")]


async def test_a_long_poll_cut_mid_reply_puts_the_handed_message_back(localmesh_server,
                                                                      meshagent_room):
    # A long poll is answered by the send that hands it a message (Queues.take's deliver):
    # under a drop_reply fault it is answered by its own task instead, and cut as ordered.
    # (Our client as the worker: the SDK's room, closed while it reconnects after the cut,
    # goes on waiting on the new connection and never leaves its context: an SDK race.)
    fault = localmesh_server.faults.add(
        "drop_reply", toolkit="queues", tool="receive", participant="worker", after_frames=1)
    token = localmesh_server.mint_token(room="r", name="worker")
    async with meshagent_room("r", name="sender") as sender:
        await sender.queues.send(name="q", message="created")
        assert await sender.queues.receive(name="q", wait=False) == "created"
        async with RoomClient(localmesh_server.url, "r", token) as worker:
            receiving = asyncio.ensure_future(worker.queues.receive("q"))
            async with asyncio.timeout(TIMEOUT):
                await localmesh_server.project.until_waiting("r", "q")
                await sender.queues.send(name="q", message="m0")
                with pytest.raises(ConnectionLost):
                    await receiving
    assert fault.fired == 1
    async with meshagent_room("r", name="worker") as worker:
        assert await worker.queues.receive(name="q", wait=False) == "m0"


async def test_a_download_cut_mid_stream_leaves_the_file_whole(localmesh_server, meshagent_room):
    data = bytes(range(256)) * 800  # 200 KiB: four 64 KiB data chunks
    async with meshagent_room("r", name="writer") as room:
        await room.storage.upload(path="big.bin", data=data)
    blobs = blob_sizes(localmesh_server)
    # Frames of the reply: the stream's opening (2), its start chunk (2), each 64 KiB data chunk
    # (1 + 64). After 79 the client has the first data chunk and part of the second.
    fault = localmesh_server.faults.add(
        "drop_reply", toolkit="storage", tool="download", participant="reader", after_frames=79)
    got = bytearray()
    async with meshagent_room("r", name="reader") as room:
        with pytest.raises(RoomException, match="1006"):
            async for chunk in room.storage.download_stream(path="big.bin"):
                if chunk.headers.get("kind") == "data":
                    got += chunk.data
    assert len(got) == 65536 and got == data[:65536]
    assert fault.fired == 1
    async with meshagent_room("r", name="reader") as room:
        assert (await room.storage.download(path="big.bin")).data == data
    assert stored_bytes(localmesh_server, "r", "big.bin") == data
    assert blob_sizes(localmesh_server) == blobs  # the same one version, nothing half-made
    assert fault_events(localmesh_server, "r") == [
        ("reader", "storage.download", "cut the connection after 79 reply frame(s)")]


# ---------------------------------------------------------------- drop_connection


async def test_a_connection_cut_after_n_frames(localmesh_server, meshagent_room):
    # The handshake is 4 frames (room_ready, connected); a send's reply 2 more.
    fault = localmesh_server.faults.add("drop_connection", participant="alice", after_frames=6)
    history = DeliveryHistory()
    async with meshagent_room("r", name="alice") as alice:
        assert await send(history, alice, "q", "m1", "alice")  # its reply is frames 5 and 6
        assert not await send(history, alice, "q", "m2", "alice")  # the connection is gone
    assert fault.fired == 1
    async with meshagent_room("r", name="alice") as alice:  # the fault is spent
        assert await send(history, alice, "q", "m3", "alice")
        received = await drain(history, alice, "q", "alice")
    assert received == ["m1", "m3"]
    check_delivery(history).assert_ok()
    assert fault_events(localmesh_server, "r") == [
        ("alice", "connection", "cut the connection after 6 frame(s)")]


async def test_our_client_reconnects_after_a_cut_and_loses_nothing(localmesh_server, localmesh_room):
    fault = localmesh_server.faults.add("drop_connection", participant="alice", nth=1, after_frames=8)
    room = await localmesh_room("r", name="alice",
                                reconnect_backoff=Backoff(base=0.01, cap=0.05, rng=random.Random(2)))
    history = DeliveryHistory()
    for i in range(5):
        try:
            await history.send("q", f"m{i}", room.queues.send("q", {"id": f"m{i}"}), "alice")
        except Exception:  # noqa: BLE001 - a send in flight at the cut has an unknown outcome
            pass
    await room.wait_connected(reconnects=1)
    while (message := await history.receive(
            "q", room.queues.receive("q", wait=False), key=message_id, client="alice")) is not None:
        assert message["id"].startswith("m")
    assert fault.fired == 1 and room.reconnects == 1
    check_delivery(history).assert_ok()
    assert fault_events(localmesh_server, "r") == [
        ("alice", "connection", "cut the connection after 8 frame(s)")]


# ---------------------------------------------------------------- refuse


async def test_a_503_refusal_is_retried_by_the_sdk(localmesh_server, meshagent_room):
    fault = localmesh_server.faults.add("refuse", participant="alice", status=503, reason="warming up")
    history = DeliveryHistory()
    async with meshagent_room("r", name="alice") as alice:  # refused once, then retried
        assert await send(history, alice, "q", "m1", "alice")
        assert await drain(history, alice, "q", "alice") == ["m1"]
    assert (fault.seen, fault.fired) == (1, 1)
    check_delivery(history).assert_ok()
    assert fault_events(localmesh_server, "r") == [("alice", "connect", "refused with 503")]


async def test_a_403_refusal_fails_the_sdk_at_once(localmesh_server, meshagent_room):
    fault = localmesh_server.faults.add("refuse", participant="alice", status=403, reason="banned")
    with pytest.raises(RoomException, match="websocket connect failed with status 403"):
        async with meshagent_room("r", name="alice"):
            pass
    assert fault.fired == 1
    async with meshagent_room("r", name="alice") as alice:  # spent: the next one gets in
        await alice.queues.send(name="q", message={"id": "m1"})
        assert await alice.queues.receive(name="q", wait=False) == {"id": "m1"}
    assert fault_events(localmesh_server, "r") == [("alice", "connect", "refused with 403")]


async def test_refusing_for_a_time_on_the_servers_clock(
    localmesh_server, localmesh_clock, localmesh_room
):
    refused = asyncio.Event()
    timeline_hook = localmesh_server.faults.observer

    def observe(fired: FaultFired) -> None:  # the timeline's hook, and the test's
        timeline_hook(fired)
        if fired.fault.fired >= 3:
            refused.set()

    localmesh_server.faults.observer = observe
    room = await localmesh_room("r", name="alice",
                                reconnect_backoff=Backoff(base=0.01, cap=0.02, rng=random.Random(3)))
    history = DeliveryHistory()
    await history.send("q", "m1", room.queues.send("q", {"id": "m1"}), "alice")
    fault = localmesh_server.faults.add("refuse", seconds=60, reason="maintenance")
    # A new connection is refused, with the reason in the handshake's answer.
    with pytest.raises(HandshakeRefused) as info:
        await localmesh_room("r", name="bob", reconnect=False)
    assert (info.value.status, "maintenance" in str(info.value)) == (503, True)
    assert await localmesh_server.drop_connections("r") == 1
    async with asyncio.timeout(TIMEOUT):
        await refused.wait()  # alice keeps retrying, refused each time
    await localmesh_clock.advance(59.9)
    assert not room.connected
    await localmesh_clock.advance(0.1)  # the window ends on the server's clock
    async with asyncio.timeout(TIMEOUT):
        await room.wait_connected(reconnects=1)
    await history.receive("q", room.queues.receive("q", wait=False), key=message_id, client="alice")
    assert fault.fired >= 3 and fault.spent(localmesh_clock.time())
    check_delivery(history).assert_ok()
    fired = fault_events(localmesh_server, "r")
    assert len(fired) == fault.fired and fired[0] == ("bob", "connect", "refused with 503")
    assert set(fired[1:]) == {("alice", "connect", "refused with 503")}


# ---------------------------------------------------------------- fail_write


async def test_an_upload_failed_half_way_leaves_the_old_file(localmesh_server, meshagent_room):
    old, new = b"the old report\n" * 10, bytes(range(256)) * 800  # the new one: 200 KiB
    on_disk_at_failure: list[dict[str, int]] = []
    timeline_hook = localmesh_server.faults.observer

    def observe(fired: FaultFired) -> None:  # the blobs on disk at the moment the write fails
        on_disk_at_failure.append(blob_sizes(localmesh_server))
        timeline_hook(fired)

    localmesh_server.faults.observer = observe
    async with meshagent_room("r", name="writer") as room:
        await room.storage.upload(path="reports/q1.txt", data=old)
        await room.storage.upload(path="notes.txt", data=b"untouched")
        before = sorted(e.name for e in await room.storage.list(path="reports"))
        blobs_before = blob_sizes(localmesh_server)
        fault = localmesh_server.faults.add("fail_write", path="reports/*", after_bytes=100_000)
        # The SDK answers the server's pull with all 200 KiB in one piece: the write stores it
        # up to the failure point and fails there, at exactly that byte.
        with pytest.raises(RoomException, match=r"'reports/q1.txt' after 100000 byte\(s\)"):
            await room.storage.upload(path="reports/q1.txt", data=new, overwrite=True)
        # Half of the new version really was on disk when it failed, in a blob of its own.
        (at_failure,) = on_disk_at_failure
        assert [size for name, size in at_failure.items() if name not in blobs_before] == [100_000]
        fault2 = localmesh_server.faults.add("fail_write", path="reports/q2.txt")
        with pytest.raises(RoomException, match="after 204800 byte"):  # all in, then refused
            await room.storage.upload(path="reports/q2.txt", data=new)
        assert (fault.fired, fault2.fired) == (1, 1)
        # Nothing half-written: as the SDK sees it, and on disk (the rows, the blob files;
        # the half-written blobs are gone).
        assert (await room.storage.download(path="reports/q1.txt")).data == old
        assert not await room.storage.exists(path="reports/q2.txt")
        assert sorted(e.name for e in await room.storage.list(path="reports")) == before
        assert stored_bytes(localmesh_server, "r", "reports/q1.txt") == old
        assert stored_bytes(localmesh_server, "r", "reports/q2.txt") is None
        assert stored_bytes(localmesh_server, "r", "notes.txt") == b"untouched"
        assert blob_sizes(localmesh_server) == blobs_before
        # The faults are spent: the same writes now land whole.
        await room.storage.upload(path="reports/q1.txt", data=new, overwrite=True)
        assert (await room.storage.download(path="reports/q1.txt")).data == new
    assert stored_bytes(localmesh_server, "r", "reports/q1.txt") == new
    assert fault_events(localmesh_server, "r") == [
        ("writer", "reports/q1.txt", "failed the write of 'reports/q1.txt' after 100000 byte(s)"),
        ("writer", "reports/q2.txt", "failed the write of 'reports/q2.txt' after 204800 byte(s)"),
    ]


async def test_a_files_api_put_failed_part_way_leaves_the_old_file(localmesh_server):
    server = localmesh_server
    url = f"{server.url}/files/{server.project_id}/rooms/r/doc.txt"
    headers = {"authorization": f"Bearer {server.api_key}"}
    # The API key's writes (its participant is "api-key"), from the second on.
    fault = server.faults.add("fail_write", participant="api-key", nth=2, after_bytes=2500)

    async def body():
        for _ in range(4):
            yield b"x" * 1000

    async with httpx.AsyncClient(headers=headers) as client:
        assert (await client.put(url, content=b"version 1")).status_code == 200
        refused = await client.put(url, content=body())
        assert refused.status_code == 500, refused.text
        # Failed in the third 1000-byte piece, at exactly the byte asked for.
        assert "failed the write of 'doc.txt' after 2500 byte(s)" in refused.json()["error"]
        assert (await client.get(url)).content == b"version 1"
    assert fault.fired == 1
    assert stored_bytes(server, "r", "doc.txt") == b"version 1"
    assert len(blob_sizes(server)) == 1  # the failed write's blob is gone
    assert fault_events(server, "r") == [
        ("api-key", "doc.txt", "failed the write of 'doc.txt' after 2500 byte(s)")]
