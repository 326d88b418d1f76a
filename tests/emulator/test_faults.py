import pytest
from meshagent.api import RoomException


async def test_injected_receive_failures_then_recovery(localmesh_server, meshagent_room):
    localmesh_server.faults.fail("queues", "receive", times=2, code=1008, message="boom")
    async with meshagent_room("r") as room:
        await room.queues.send(name="q", message={"n": 1})
        for _ in range(2):
            with pytest.raises(RoomException) as info:
                await room.queues.receive(name="q", wait=False)
            assert "boom" in str(info.value)
        assert await room.queues.receive(name="q", wait=False) == {"n": 1}


def test_faults_scope_to_room_and_count():
    from localmesh.emulator.faults import Faults

    faults = Faults()
    faults.fail("storage", "upload", room="a", times=2, code=1001, message="nope")
    assert faults.take("b", "storage", "upload") is None
    first = faults.take("a", "storage", "upload")
    assert first is not None and (first.code, first.message) == (1001, "nope")
    assert faults.take("a", "storage", "upload") is not None
    assert faults.take("a", "storage", "upload") is None
    assert not faults.armed("storage", "upload")


def test_faults_for_ever_until_cleared():
    from localmesh.emulator.faults import Faults

    faults = Faults()
    faults.fail("queues", "send", times=None)
    assert all(faults.take("r", "queues", "send") is not None for _ in range(5))
    faults.clear()
    assert faults.take("r", "queues", "send") is None
    with pytest.raises(ValueError, match="at least 1"):
        faults.fail("queues", "send", times=0)

