"""The queue state machine users can run: against localmesh here, against a real room with
credentials (``LOCALMESH_TARGET=real``; see docs/harness.md)."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from localmesh.emulator import RoomServer
from localmesh.fixtures.queue_machine import RoomTarget, queue_machine, shared_loop

ROOM = "props"


def test_the_queue_machine_holds_against_localmesh() -> None:
    loop = shared_loop()
    server = RoomServer(long_poll_window=0.05)
    loop.run(server.start())
    try:
        target = RoomTarget(server.url, ROOM, token=lambda name: server.mint_token(room=ROOM, name=name))
        machine = queue_machine(target, clients=3)
        run_state_machine_as_test(
            machine, settings=settings(max_examples=20, stateful_step_count=20, deadline=None)
        )
        # every run closed its queues: the room is left as it was found
        assert loop.run(server.state.queues.list(ROOM)) == []
    finally:
        loop.run(server.stop())


def test_the_queue_machine_is_not_vacuous() -> None:
    """A machine whose model expects LIFO order fails its first receive against a FIFO room."""
    loop = shared_loop()
    server = RoomServer(long_poll_window=0.05)
    loop.run(server.start())
    try:
        target = RoomTarget(server.url, ROOM, token=lambda name: server.mint_token(room=ROOM, name=name))

        class LifoModel(queue_machine(target)):  # type: ignore[misc]
            def _expected_head(self, line: list) -> object:
                return line.pop() if line else None

        machine = LifoModel()
        machine.send(client=0, q=0, message={"n": 1}, create=True)
        machine.send(client=1, q=0, message={"n": 2}, create=True)
        machine.sizes_match()
        with pytest.raises(AssertionError, match=r"got \{'n': 1\}, the model says \{'n': 2\}"):
            machine.receive(client=0, q=0)
        machine.teardown()
    finally:
        loop.run(server.stop())


@pytest.mark.real_room
def test_the_queue_machine_holds_against_a_real_room() -> None:
    url, token, room = (os.environ.get(name) for name in
                        ("MESHAGENT_API_URL", "MESHAGENT_TOKEN", "MESHAGENT_ROOM"))
    if os.environ.get("LOCALMESH_TARGET") != "real" or not (url and token and room):
        pytest.skip("needs LOCALMESH_TARGET=real, MESHAGENT_API_URL, MESHAGENT_TOKEN and MESHAGENT_ROOM")
    run_state_machine_as_test(queue_machine(RoomTarget(url, room, token)),
                              settings=settings(max_examples=10, deadline=None))
