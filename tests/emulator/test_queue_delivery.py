"""Delivering queue messages: a message whose reply cannot be written stays in the queue;
a long-polling receiver gets a message before its sender hears back."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from localmesh.emulator.calls import Call
from localmesh.emulator.queues import Queues
from localmesh.emulator.server import RoomServer
from localmesh.emulator.store import Store
from localmesh.emulator.toolkits.queues import QueuesToolkit
from localmesh.protocol.grants import parse_api_scope
from localmesh.protocol.tokens import Participant, full_api_scope
from localmesh.protocol.wire import Content, json_content
from localmesh.worker import RoomClient


class GonePeer:
    """A session whose socket has just closed: every write fails."""

    participant_id = "p1"
    participant = Participant(
        name="gone", room="r", role="agent", api=parse_api_scope(full_api_scope()), project_id=None,
        claims={},
    )

    async def reply(self, message_id: int, content: Content, **_: Any) -> None:
        raise ConnectionError("the connection closed")

    async def send(self, type: str, header: dict[str, Any], payload: bytes = b"", **_: Any) -> None:
        raise ConnectionError("the connection closed")


async def test_a_receive_whose_reply_fails_takes_nothing():
    store = await Store.open(None)
    queues = Queues(store)
    try:
        await queues.send("r", "q", {"n": 1})
        await queues.send("r", "q", {"n": 2})
        call = Call(
            message_id=7, toolkit="queues", tool="receive",
            arguments=json_content({"name": "q", "wait": False}),
            tool_call_id="t", peer=GonePeer(), room="r",
        )
        with pytest.raises(ConnectionError):
            await QueuesToolkit(queues).receive(call)
        async with asyncio.timeout(5):
            await queues.settle()
        # Still first in line, ahead of the message sent after it.
        assert await queues.receive("r", "q", wait=False) == {"n": 1}
        assert await queues.receive("r", "q", wait=False) == {"n": 2}
    finally:
        await store.close()


async def test_a_long_poller_is_sent_the_message_before_its_sender_is_answered() -> None:
    """The receiver is the one waiting: its delivery is queued before the sender's reply
    (the timeline records each as it is queued for its client)."""
    async with RoomServer(data_dir=None) as server:
        async with (
            RoomClient(server.url, "r", server.mint_token(room="r", name="rx")) as rx,
            RoomClient(server.url, "r", server.mint_token(room="r", name="tx")) as tx,
        ):
            await rx.queues.receive("q", wait=False)  # creates the queue
            receiving = asyncio.ensure_future(rx.queues.receive("q"))
            async with asyncio.timeout(10):
                await server.state.queues.until_waiting("r", "q")
                await tx.queues.send("q", {"n": 1})
                assert await receiving == {"n": 1}
        order = [(event.kind, event.participant) for event in server.history.events("r")
                 if event.kind == "queue.deliver" or (event.kind == "call" and event.participant == "tx")]
        assert order == [("queue.deliver", "rx"), ("call", "tx")]


async def test_a_long_poll_answered_by_the_hand_off_is_not_put_back_when_cancelled() -> None:
    store = await Store.open(None)
    queues = Queues(store)
    try:
        written: list[int] = []

        def deliver(taken) -> bool:
            written.append(taken.id)
            return True

        await queues.send("r", "q", {"n": 0})
        assert (await queues.take("r", "q", deliver=deliver)).delivered is False  # in line: no hand-off
        taking = asyncio.ensure_future(queues.take("r", "q", deliver=deliver))
        async with asyncio.timeout(5):
            await queues.until_waiting("r", "q")
            message_id = await queues.send("r", "q", {"n": 1})
        assert written == [message_id]  # written from the send itself
        taking.cancel()  # before the taker ran again: the message is its client's already
        with pytest.raises(asyncio.CancelledError):
            await taking
        await queues.settle()
        assert queues.size("r", "q") == 0
        assert await queues.receive("r", "q", wait=False) is None
    finally:
        await store.close()


async def test_a_long_poll_that_cannot_be_answered_at_once_takes_the_message_as_before() -> None:
    store = await Store.open(None)
    queues = Queues(store)
    try:
        taking = asyncio.ensure_future(queues.take("r", "q", deliver=lambda taken: False))
        async with asyncio.timeout(5):
            await queues.until_waiting("r", "q")
            await queues.send("r", "q", {"n": 1})
            taken = await taking
        assert not taken.delivered and taken.body == '{"n": 1}'
    finally:
        await store.close()
