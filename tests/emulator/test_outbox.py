"""The outbox hands the socket whole messages, a loop turn's worth at a time, in order."""

from __future__ import annotations

import asyncio

import pytest

from localmesh.emulator.outbox import BATCH_BYTES, Outbox, OutboxClosed


class Socket:
    """Records each hand-off of frames, as the websocket's ``send_frames`` would get it."""

    def __init__(self) -> None:
        self.writes: list[list[bytes]] = []
        self.wrote = asyncio.Event()
        self.stuck = False

    async def send_frames(self, frames: list[bytes]) -> None:
        if self.stuck:
            await asyncio.Event().wait()  # a peer that reads nothing: the write never completes
        self.writes.append(list(frames))
        self.wrote.set()


async def test_messages_queued_in_one_turn_are_written_together_in_order() -> None:
    socket = Socket()
    outbox = Outbox(socket.send_frames, on_stalled=lambda reason: None)
    outbox.start()
    try:
        await outbox.put([b"a0", b"a1"])
        outbox.put_nowait([b"b0"])
        await outbox.put([b"c0", b"c1", b"c2"])
        await outbox.flush(timeout=5)
        assert socket.writes == [[b"a0", b"a1", b"b0", b"c0", b"c1", b"c2"]]
        assert outbox.buffered == 0
        await outbox.put([b"d0"])  # a later turn: a write of its own
        await outbox.flush(timeout=5)
        assert socket.writes[1:] == [[b"d0"]]
    finally:
        await outbox.aclose()


async def test_a_batch_ends_at_a_message_boundary_past_its_size() -> None:
    socket = Socket()
    outbox = Outbox(socket.send_frames, max_bytes=4 * BATCH_BYTES, on_stalled=lambda reason: None)
    outbox.start()
    big = b"x" * (BATCH_BYTES // 2 + 1)
    try:
        for name in (b"1", b"2", b"3"):
            await outbox.put([name, big])
        await outbox.flush(timeout=5)
        # Two such messages are past BATCH_BYTES: each write takes whole messages only.
        assert [[frame for frame in write if len(frame) == 1] for write in socket.writes] == [
            [b"1"], [b"2"], [b"3"]]
    finally:
        await outbox.aclose()


async def test_a_write_that_makes_no_progress_cuts_the_client_off() -> None:
    socket = Socket()
    socket.stuck = True
    stalled: list[str] = []
    cut = asyncio.Event()

    def on_stalled(reason: str) -> None:
        stalled.append(reason)
        cut.set()

    outbox = Outbox(socket.send_frames, write_timeout=0.05, on_stalled=on_stalled)
    outbox.start()
    try:
        await outbox.put([b"reply"])
        async with asyncio.timeout(5):
            await cut.wait()
        assert outbox.closed and stalled == ["a write to the client made no progress for 0.05 s"]
        with pytest.raises(OutboxClosed):
            outbox.put_nowait([b"more"])
    finally:
        await outbox.aclose()


async def test_a_message_is_written_at_once_when_nothing_waits_and_the_socket_takes_it() -> None:
    socket = Socket()
    taken: list[list[bytes]] = []
    takes = [True]  # whether the socket takes a write without waiting right now

    def write_now(frames: list[bytes]) -> bool:
        if takes[0]:
            taken.append(list(frames))
        return takes[0]

    outbox = Outbox(socket.send_frames, write_now=write_now, on_stalled=lambda reason: None)
    outbox.start()
    try:
        await outbox.put([b"a0", b"a1"])
        assert taken == [[b"a0", b"a1"]] and outbox.buffered == 0  # written in the put itself
        takes[0] = False  # the socket is full: the writer task takes over, in order
        await outbox.put([b"b0"])
        takes[0] = True
        await outbox.put([b"c0"])  # queued behind b0, never ahead of it
        await outbox.flush(timeout=5)
        assert taken == [[b"a0", b"a1"]]
        assert socket.writes == [[b"b0", b"c0"]]
    finally:
        await outbox.aclose()
