"""The fault model on its own: aiming, the nth matching event, counting, spending, refusals in
time, validation. The kinds acting on a live server: tests/emulator/test_fault_kinds.py."""

import pytest
from meshagent.api import RoomException

from localmesh.emulator.faults import FaultFired, Faults


async def test_injected_receive_failures_then_recovery(localmesh_server, meshagent_room):
    fault = localmesh_server.faults.fail("queues", "receive", times=2, code=1008, message="boom")
    async with meshagent_room("r") as room:
        await room.queues.send(name="q", message={"n": 1})
        for _ in range(2):
            with pytest.raises(RoomException) as info:
                await room.queues.receive(name="q", wait=False)
            assert "boom" in str(info.value)
        assert await room.queues.receive(name="q", wait=False) == {"n": 1}
    assert (fault.fired, fault.remaining) == (2, 0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def connect(faults: Faults, room: str, name: str) -> tuple[int, str] | None:
    return faults.refusal(room, name)


def test_a_fault_aims_at_one_participant_in_one_room():
    faults = Faults()
    fault = faults.add("refuse", room="a", participant="alice", times=None)
    assert connect(faults, "a", "bob") is None
    assert connect(faults, "b", "alice") is None
    assert connect(faults, "a", "alice") == (503, "localmesh is refusing connections (injected fault)")
    assert (fault.seen, fault.fired) == (1, 1)


def test_the_nth_matching_event_and_times():
    faults = Faults()
    fault = faults.add("refuse", participant="alice", nth=3, times=2, status=403, reason="no")
    outcomes = [connect(faults, "r", "alice") for _ in range(6)]
    assert outcomes == [None, None, (403, "no"), (403, "no"), None, None]
    # Spent after its two firings: later attempts are no longer counted as seen.
    assert (fault.seen, fault.fired, fault.remaining) == (4, 2, 0)
    assert "fired 2" in fault.describe()


def test_refusing_for_a_time_follows_the_injected_clock():
    clock = Clock()
    faults = Faults(now=clock)
    fault = faults.add("refuse", seconds=30)  # every attempt for 30 s
    assert fault.times is None
    assert connect(faults, "r", "a") is not None
    clock.now += 29.9
    assert connect(faults, "r", "b") is not None
    clock.now += 0.1
    assert connect(faults, "r", "c") is None
    assert fault.fired == 2


def test_every_firing_is_told_to_the_observer():
    told: list[FaultFired] = []
    faults = Faults(observer=told.append)
    fault = faults.add("refuse", status=503)
    connect(faults, "r", "alice")
    assert [(t.fault, t.room, t.participant, t.subject, t.detail) for t in told] == [
        (fault, "r", "alice", "connect", "refused with 503")]


def test_write_guards_aim_by_path_glob_and_fail_at_the_chosen_byte():
    faults = Faults()
    fault = faults.add("fail_write", path="reports/*.txt", after_bytes=10)
    assert faults.write_guard("r", "alice", "notes.txt") is None
    guard = faults.write_guard("r", "alice", "reports/q1.txt")
    assert guard is not None
    guard.received(9)  # not yet
    with pytest.raises(Exception, match="after 12 byte"):
        guard.received(12)
    assert fault.fired == 1
    assert faults.write_guard("r", "alice", "reports/q2.txt") is None  # spent


def test_a_write_guard_stores_a_piece_only_up_to_the_failure_point():
    faults = Faults()
    faults.add("fail_write", after_bytes=10)
    guard = faults.write_guard("r", None, "a.txt")
    assert guard.take(0, b"abcd") == b"abcd"  # before the point: all of it
    assert guard.take(4, b"efghijklmn") == b"efghij"  # across it: up to byte 10
    assert guard.take(10, b"op") == b""
    with pytest.raises(Exception, match="after 10 byte"):
        guard.received(10)
    unlimited = faults.add("fail_write", path="b.txt")
    assert faults.write_guard("r", None, "b.txt").take(0, b"x" * 100) == b"x" * 100
    assert unlimited.fired == 0


def test_a_write_shorter_than_after_bytes_fails_once_it_is_all_in():
    faults = Faults()
    faults.add("fail_write", after_bytes=1000)
    guard = faults.write_guard("r", None, "a.txt")
    guard.received(5)
    with pytest.raises(Exception, match="after 5 byte"):
        guard.complete(5)


def test_armed_ignores_spent_faults_and_other_tools():
    faults = Faults()
    faults.add("error", toolkit="queues", tool="send")
    faults.add("delay", toolkit="storage", seconds=1)  # any storage tool
    assert faults.armed("queues", "send") and faults.armed("storage", "upload")
    assert not faults.armed("queues", "receive")
    faults.add("refuse")  # not a call fault
    assert not faults.armed("messaging", "enable")


def test_remove_clear_and_list():
    faults = Faults()
    first = faults.add("refuse")
    second = faults.add("drop_connection", after_frames=4)
    assert faults.all(include_spent=True) == [first, second]
    assert faults.remove(first) and not faults.remove(first.id)
    assert faults.get(second.id) is second
    faults.clear()
    assert faults.all(include_spent=True) == []


def test_for_ever_until_removed():
    faults = Faults()
    fault = faults.add("refuse", times=None)
    assert all(connect(faults, "r", "x") is not None for _ in range(5))
    assert fault.fired == 5 and fault.remaining is None
    faults.remove(fault)
    assert connect(faults, "r", "x") is None


@pytest.mark.parametrize(("kind", "options", "message"), [
    ("explode", {}, "unknown fault kind 'explode'; kinds: error, delay, drop_reply"),
    ("error", {"seconds": 3}, "'seconds' does not apply to a error fault"),
    ("refuse", {"toolkit": "queues"}, "'toolkit' does not apply to a refuse fault"),
    ("error", {"colour": "red"}, "unknown fault option 'colour'"),
    ("delay", {}, "a delay fault needs seconds"),
    ("delay", {"seconds": -1}, "seconds must be a number >= 0"),
    ("refuse", {"status": 200}, "status must be an HTTP error status"),
    ("drop_reply", {"after_frames": 1.5}, "after_frames must be a whole number"),
    ("error", {"nth": 0}, "nth must be a whole number >= 1"),
    ("error", {"times": 0}, "times must be a whole number >= 1"),
    ("error", {"participant": 7}, "participant must be a string"),
])
def test_bad_faults_are_refused_with_a_reason(kind, options, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        Faults().add(kind, **options)


def test_kinds_may_be_spelled_with_hyphens():
    assert Faults().add("drop-reply", toolkit="storage", tool="download").kind == "drop_reply"
