"""The real SDK's ``room.queues`` against the emulator."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
from compat_helpers import PROMPT
from meshagent.api import RoomException
from targets import on_localmesh

pytestmark = pytest.mark.compat

ROOM = "r"


async def test_nested_json_and_unicode_round_trip(client):
    message = {
        "prompt": "héllo wörld ✓ 日本語 🚀",
        "nested": {"list": [1, 2.5, None, True, {"deep": ["x", {"y": []}]}], "empty": {}},
        "quote\"key": "back\\slash\nnewline\ttab",
        "zero": 0,
        "neg": -17,
    }
    async with client(ROOM) as room:
        await room.queues.send(name="q", message=message)
        assert await room.queues.receive(name="q", wait=False) == message


@pytest.mark.slow
async def test_one_megabyte_message(client):
    big = {"blob": "ü" * (512 * 1024), "tail": list(range(1000))}  # > 1 MB of UTF-8
    async with client(ROOM, name="a") as a, client(ROOM, name="b") as b:
        await a.queues.send(name="big", message=big)
        async with asyncio.timeout(PROMPT):
            assert await b.queues.receive(name="big", wait=False) == big


async def test_fifo_order(client):
    async with client(ROOM) as room:
        for i in range(40):
            await room.queues.send(name="fifo", message={"i": i})
        got = [await room.queues.receive(name="fifo", wait=False) for _ in range(40)]
        assert got == [{"i": i} for i in range(40)]
        assert await room.queues.receive(name="fifo", wait=False) is None


@pytest.mark.localmesh_only(reason="waits for or tunes the server's long-polls (queue internals)")
async def test_long_poll_answers_another_clients_send(server, client):
    server.long_poll_window = 30  # only the send can end this receive in time
    async with client(ROOM, name="waiter") as waiter, client(ROOM, name="sender") as sender:
        receiving = asyncio.create_task(waiter.queues.receive(name="jobs", wait=True))
        async with asyncio.timeout(PROMPT):
            await server.state.queues.until_waiting(ROOM, "jobs")
        assert not receiving.done()
        started = time.monotonic()
        await sender.queues.send(name="jobs", message={"n": 1})
        async with asyncio.timeout(PROMPT):
            assert await receiving == {"n": 1}
        assert time.monotonic() - started < 2.0
        assert server.state.queues.waiting(ROOM, "jobs") == 0


@pytest.mark.localmesh_only(reason="waits for or tunes the server's long-polls (queue internals)")
async def test_long_poll_on_empty_queue_answers_none_after_window(server, client):
    server.long_poll_window = 0.3
    async with client(ROOM) as room:
        started = time.monotonic()
        async with asyncio.timeout(PROMPT):
            assert await room.queues.receive(name="idle", wait=True) is None
        assert time.monotonic() - started >= 0.25


async def test_receive_without_wait_on_empty_queue_answers_at_once(server, client):
    if on_localmesh(server):
        server.long_poll_window = 60  # a wrongly waiting receive would blow the timeout below
    async with client(ROOM) as room:
        async with asyncio.timeout(PROMPT):
            assert await room.queues.receive(name="nothing", wait=False) is None
        if on_localmesh(server):
            assert server.state.queues.waiting(ROOM, "nothing") == 0


async def test_list_sizes_drain_and_close(client):
    async with client(ROOM) as room:
        for i in range(3):
            await room.queues.send(name="a", message={"i": i})
        await room.queues.send(name="b", message={})
        await room.queues.open(name="c")
        sizes = {q.name: q.size for q in await room.queues.list()}
        assert sizes == {"a": 3, "b": 1, "c": 0}

        await room.queues.drain(name="a")
        assert await room.queues.receive(name="a", wait=False) is None
        assert {q.name: q.size for q in await room.queues.list()}["a"] == 0

        await room.queues.close(name="b")
        assert "b" not in {q.name for q in await room.queues.list()}
        with pytest.raises(RoomException) as raised:
            await room.queues.send(name="b", message={}, create=False)
        assert raised.value.code == 5001


async def test_send_without_create_to_missing_queue_is_5001(client):
    async with client(ROOM) as room:
        with pytest.raises(RoomException) as raised:
            await room.queues.send(name="missing", message={"x": 1}, create=False)
        assert raised.value.code == 5001
        assert "missing" in str(raised.value)
        # and nothing was created by the refused send
        assert "missing" not in {q.name for q in await room.queues.list()}


@pytest.mark.localmesh_only(reason="waits for or tunes the server's long-polls (queue internals)")
async def test_concurrent_receivers_get_every_message_exactly_once(server, client):
    server.long_poll_window = 0.2
    total = 60
    received: list[int] = []
    all_in = asyncio.Event()

    async def receive_loop(room) -> None:
        while not all_in.is_set():
            message = await room.queues.receive(name="work", wait=True)
            if message is not None:
                received.append(message["n"])
                if len(received) >= total:
                    all_in.set()

    clients = [client(ROOM, name=f"r{i}") for i in range(4)]
    async with clients[0] as c0, clients[1] as c1, clients[2] as c2, clients[3] as c3:
        async with client(ROOM, name="sender") as sender:
            loops = [asyncio.create_task(receive_loop(c)) for c in (c0, c1, c2, c3)]
            for n in range(total):
                await sender.queues.send(name="work", message={"n": n})
            async with asyncio.timeout(PROMPT * 2):
                await all_in.wait()
                await asyncio.gather(*loops)  # each returns after its window at most
            assert await sender.queues.receive(name="work", wait=False) is None
    assert Counter(received) == Counter(range(total)), "lost or duplicated messages"


@pytest.mark.localmesh_only(reason="waits for or tunes the server's long-polls (queue internals)")
async def test_receiver_closed_mid_long_poll_takes_nothing(server, client):
    server.long_poll_window = 30
    async with client(ROOM, name="survivor") as survivor:
        leaver = client(ROOM, name="leaver")
        await leaver.__aenter__()
        pending = asyncio.create_task(leaver.queues.receive(name="jobs", wait=True))
        async with asyncio.timeout(PROMPT):
            await server.state.queues.until_waiting(ROOM, "jobs")
        await leaver.__aexit__(None, None, None)
        with pytest.raises(Exception):  # noqa: B017 - the SDK fails the request somehow
            async with asyncio.timeout(PROMPT):
                await pending
        # Race the server noticing the close: whichever happens first, the message stays.
        await survivor.queues.send(name="jobs", message={"keep": "me"})
        async with asyncio.timeout(PROMPT):
            assert await survivor.queues.receive(name="jobs", wait=True) == {"keep": "me"}


@pytest.mark.localmesh_only(reason="waits for or tunes the server's long-polls (queue internals)")
async def test_pending_long_poll_does_not_block_send_on_same_connection(server, client):
    server.long_poll_window = 30
    async with client(ROOM) as room:
        receiving = asyncio.create_task(room.queues.receive(name="self", wait=True))
        async with asyncio.timeout(PROMPT):
            await server.state.queues.until_waiting(ROOM, "self")
            await room.queues.send(name="self", message={"to": "myself"})
            assert await receiving == {"to": "myself"}


async def test_text_message_round_trips_as_text(client):
    async with client(ROOM) as room:
        await room.queues.send(name="t", message="just a string")  # type: ignore[arg-type]
        assert await room.queues.receive(name="t", wait=False) == "just a string"
