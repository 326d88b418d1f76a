"""The room timeline: what it records, the history API over it, and its bounds."""

from __future__ import annotations

import pytest

from localmesh.emulator.namespaces import room_key
from localmesh.emulator.server import RoomServer
from localmesh.emulator.timeline import KEEP_WHOLE_BYTES, Timeline, bounded_arguments, summarise_arguments
from localmesh.worker import RoomClient, RoomError

SCRIPT = """
rules:
  - name: hello
    match: {user: hello}
    answer: {text: hi there}
"""


async def test_the_timeline_records_a_session_in_order(localmesh_server: RoomServer) -> None:
    token = localmesh_server.mint_token(room="r", name="alice")
    async with RoomClient(localmesh_server.url, "r", token) as room:
        await room.queues.send("jobs", {"n": 1})
        assert await room.queues.receive("jobs", wait=False) == {"n": 1}
        await room.storage.upload("notes/a.txt", b"hello", overwrite=True)
        await room.storage.move("notes/a.txt", "notes/b.txt")
        await room.storage.delete("notes/b.txt")
        with pytest.raises(RoomError):
            await room.queues.receive("missing", create=False, wait=False)
    await localmesh_server.history.wait_for(kind="disconnect", room="r")

    history = localmesh_server.history
    kinds = [event.kind for event in history.events("r") if event.kind != "call"]
    assert kinds[:6] == [
        "connect", "queue.send", "queue.deliver", "storage.write", "storage.move", "storage.delete",
    ]
    send, deliver = history.events("r", kind="queue")
    assert (send.subject, deliver.subject) == ("jobs", "jobs")
    assert send.message_id == deliver.message_id is not None
    assert {event.participant for event in history.events("r")} == {"alice"}

    (upload,) = history.calls("storage", "upload")
    assert upload.arguments["path"] == "notes/a.txt" and upload.ok and upload.duration >= 0
    (failed,) = history.calls("queues", "receive", ok=False)
    assert failed.code == 5001
    assert "queues.receive(name='missing'" in failed.summary() and "error 5001" in failed.summary()
    assert [e.tool for e in history.calls("queues")] == ["send", "receive", "receive"]


async def test_a_disconnect_is_recorded_with_its_reason(localmesh_server: RoomServer) -> None:
    token = localmesh_server.mint_token(room="r", name="bob")
    room = RoomClient(localmesh_server.url, "r", token, reconnect=False)
    await room.connect()
    assert await localmesh_server.drop_connections("r") == 1
    await room.wait_closed()
    await localmesh_server.history.wait_for(kind="disconnect", room="r")
    (gone,) = localmesh_server.history.events("r", kind="disconnect")
    assert gone.participant == "bob" and "connection lost" in gone.summary()


async def test_faults_and_llm_exchanges_are_recorded(localmesh_server: RoomServer) -> None:
    import httpx

    localmesh_server.llm.set_script("r", _script())
    localmesh_server.faults.fail("queues", "send", times=1, code=1008)
    token = localmesh_server.mint_token(room="r", name="carol")
    async with RoomClient(localmesh_server.url, "r", token) as room:
        with pytest.raises(RoomError):
            await room.queues.send("jobs", {"n": 1})
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{localmesh_server.url}/openai/v1/responses",
            headers={"Authorization": f"Bearer {token}"},
            json={"model": "m", "input": "hello"},
        )
    assert response.status_code == 200
    (fault,) = localmesh_server.history.events("r", kind="fault")
    assert (fault.participant, fault.subject, fault.code) == ("carol", "queues.send", 1008)
    (llm,) = localmesh_server.history.events("r", kind="llm")
    assert llm.subject == "hello" and "answer" in llm.summary()
    assert "openai responses, model m" in llm.summary()  # which provider and model answered
    assert llm.participant == "carol"  # who asked: the name in the token that sent it


def _script():
    from localmesh.scripted_llm import loads_script

    return loads_script(SCRIPT, "test")


def test_the_ring_keeps_the_last_events_of_each_room() -> None:
    timeline = Timeline(size=3)
    for n in range(5):
        timeline.record("a", "queue.send", "x", "q", detail=n)
    timeline.record("b", "connect", "y")
    assert [e.detail for e in timeline.events(["a"])] == [2, 3, 4]
    assert [e.kind for e in timeline.events()] == ["queue.send"] * 3 + ["connect"]
    assert [e.detail for e in timeline.events(["a"], since=3)] == [3, 4]  # seqs 4 and 5
    timeline.clear(lambda key: key == "a")
    assert timeline.room_keys() == ["b"]
    with pytest.raises(ValueError):
        Timeline(size=0)


def test_each_room_has_a_change_marker_its_newest_seq() -> None:
    timeline = Timeline(size=2)
    assert timeline.newest_seq("a") == 0
    timeline.record("a", "connect", "x")
    timeline.record("b", "connect", "y")
    assert (timeline.newest_seq("a"), timeline.newest_seq("b"), timeline.last_seq) == (1, 2, 2)
    for _ in range(3):  # a full ring still moves on
        timeline.record("a", "call", "x", "queues.send")
    assert timeline.newest_seq("a") == 5 and timeline.newest_seq("b") == 2
    timeline.clear(lambda key: key == "a")
    assert timeline.newest_seq("a") == 0


def test_events_show_the_room_name_their_clients_know() -> None:
    timeline = Timeline()
    timeline.record(room_key("p7", "office"), "storage.write", "w", "out.txt", detail=12)
    (event,) = timeline.events()
    assert event.room == "office" and event.room_key == "p7/office"
    assert "office" in event.line() and "out.txt (12 B)" in event.line()
    assert event.to_dict()["room"] == "office"


def test_argument_summaries_are_short() -> None:
    assert summarise_arguments({"path": "a.txt", "overwrite": True}) == "path='a.txt', overwrite=True"
    long = summarise_arguments({"text": "x" * 500, "other": 1})
    assert len(long) <= 120 and "..." in long
    assert summarise_arguments(None) == ""


def test_arguments_of_a_small_request_are_kept_as_they_are_and_big_ones_bounded() -> None:
    small = {"name": "q", "message": {"i": 1, "pad": "x" * 100}}
    kept = bounded_arguments(small, request_bytes=KEEP_WHOLE_BYTES)
    assert kept == small and kept is not small  # a copy of the top level: no walk
    big = {"name": "q", "message": {"rows": list(range(100_000)), "text": "y" * 1_000_000}}
    bounded = bounded_arguments(big, request_bytes=2_000_000)
    assert bounded is not None and bounded["name"] == "q"
    assert len(repr(bounded["message"])) < 1000  # a bounded repr, not the message
    # Without the request's size, the walk decides.
    assert len(repr(bounded_arguments(big))) < 1000
