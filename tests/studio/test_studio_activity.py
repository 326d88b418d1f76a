"""The Activity view's API against a real server: a room's timeline, newest first, filtered by
kind and participant, paged (as of one event, so new events never shift a page), and closed
to anyone without the project's key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from localmesh.emulator import RoomServer
from localmesh.worker import RoomError

ROOM = "r"
BUSY = 10_000


@pytest_asyncio.fixture
async def api(localmesh_server: RoomServer) -> AsyncIterator[httpx.AsyncClient]:
    async with studio_api(localmesh_server) as client:
        yield client


def studio_api(server: RoomServer) -> httpx.AsyncClient:
    headers = {"authorization": f"Bearer {server.api_key}"}
    return httpx.AsyncClient(base_url=f"{server.url}/studio/api/rooms", headers=headers)


async def activity(api: httpx.AsyncClient, room: str = ROOM, **params: Any) -> dict[str, Any]:
    response = await api.get(f"/{room}/activity", params=params)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.localmesh_strict(armed_faults=False)  # the fault is armed to be seen firing
async def test_a_session_shows_newest_first_with_its_calls_results_and_errors(
    api, localmesh_server, localmesh_room
) -> None:
    alice = await localmesh_room(ROOM, name="alice")
    await alice.queues.send("jobs", {"n": 1})
    assert await alice.queues.receive("jobs", wait=False) == {"n": 1}
    await alice.storage.upload("notes/a.txt", b"hello", overwrite=True)
    with pytest.raises(RoomError):
        await alice.queues.receive("missing", create=False, wait=False)
    localmesh_server.faults.fail("queues", "send", code=1008, room=ROOM)
    with pytest.raises(RoomError):
        await alice.queues.send("jobs", {"n": 2})
    await alice.close()
    await localmesh_server.history.wait_for(kind="disconnect", room=ROOM)

    page = await activity(api)
    events = page["events"]
    assert page["total"] == len(events) == len(localmesh_server.history.events(ROOM))
    assert [e["seq"] for e in events] == sorted((e["seq"] for e in events), reverse=True)
    assert (events[0]["kind"], events[-1]["kind"]) == ("disconnect", "connect")
    assert {e["participant"] for e in events} == {"alice"} and page["participants"] == ["alice"]
    kinds = [e["kind"] for e in events if e["kind"] != "call"][::-1]
    assert kinds == ["connect", "queue.send", "queue.deliver", "storage.write", "fault", "disconnect"]
    (failed,) = [e for e in events if e["kind"] == "call" and e["code"] == 5001]
    assert failed["subject"] == "queues.receive" and "error 5001" in failed["summary"]
    (fault,) = [e for e in events if e["kind"] == "fault"]
    assert (fault["subject"], fault["code"]) == ("queues.send", 1008)
    (upload,) = [e for e in events if e["subject"] == "storage.upload"]
    assert upload["code"] is None and "path='notes/a.txt'" in upload["summary"]
    assert upload["summary"].endswith("ms") and upload["duration"] >= 0
    # The filter offers each kind seen, and the families that group them.
    assert page["kinds"] == ["call", "connect", "disconnect", "fault", "queue", "queue.deliver",
                             "queue.send", "storage", "storage.write"]
    assert page["newer"] == 0 and page["upto"] == events[0]["seq"] and page["kept"] == 1000


async def test_filters_by_kind_family_and_participant(api, localmesh_room, localmesh_server) -> None:
    alice = await localmesh_room(ROOM, name="alice")
    bob = await localmesh_room(ROOM, name="bob")
    await alice.queues.send("jobs", {"n": 1})
    await bob.queues.receive("jobs", wait=False)
    await bob.storage.upload("b.txt", b"b", overwrite=True)

    queue = await activity(api, kind="queue")
    assert [(e["kind"], e["participant"]) for e in queue["events"]] == [
        ("queue.deliver", "bob"), ("queue.send", "alice")]
    assert queue["total"] == 2
    sends = await activity(api, kind="queue.send")
    assert [e["kind"] for e in sends["events"]] == ["queue.send"]
    bobs = await activity(api, participant="bob")
    assert {e["participant"] for e in bobs["events"]} == {"bob"}
    assert [e["kind"] for e in bobs["events"]][-1] == "connect"
    bob_calls = await activity(api, kind="call", participant="bob")
    assert [e["subject"] for e in bob_calls["events"]] == ["storage.upload", "queues.receive"]
    # The filter lists stay whole whatever is filtered, so another choice is one click away.
    assert bob_calls["participants"] == ["alice", "bob"] and "queue.send" in bob_calls["kinds"]
    assert (await activity(api, participant="carol"))["events"] == []
    assert (await activity(api, room="empty"))["total"] == 0

    wrong = await api.get(f"/{ROOM}/activity", params={"kind": "queue.sent"})
    assert wrong.status_code == 400
    assert wrong.json()["error"].startswith("no event kind 'queue.sent': one of call, call.unanswered,")


async def test_ten_thousand_events_page_through_without_gaps_while_more_arrive(tmp_path: Path) -> None:
    async with RoomServer(data_dir=tmp_path / "data", timeline_size=20_000, durable=False) as server:
        timeline = server.state.timeline
        kinds = ["call", "queue.send", "queue.deliver", "storage.write"]
        for n in range(BUSY):
            timeline.record(ROOM, kinds[n % 4], f"p{n % 3}", f"s{n}", detail=n)
        timeline.record("other", "connect", "someone")  # another room's: never in this one's pages
        async with studio_api(server) as api:
            first = await activity(api, limit=500)
            assert (first["total"], first["kept"], len(first["events"])) == (BUSY, 20_000, 500)
            upto = first["upto"]
            seen = [e["seq"] for e in first["events"]]
            for n in range(50):  # arrive while someone scrolls: they must not shift the pages
                timeline.record(ROOM, "call", "late", f"late{n}")
            for offset in range(500, BUSY + 500, 500):
                page = await activity(api, offset=offset, limit=500, upto=upto)
                assert (page["total"], page["newer"], page["offset"]) == (BUSY, 50, offset)
                seen += [e["seq"] for e in page["events"]]
            assert len(seen) == len(set(seen)) == BUSY  # every event once, none of the late ones
            assert seen == sorted(seen, reverse=True) and seen[0] == upto
            assert [e["subject"] for e in (await activity(api, offset=BUSY - 2, upto=upto))["events"]] == [
                "s1", "s0"]

            # A page is at most 500 events; an offset past the end is an empty page.
            assert len((await activity(api, limit=100_000))["events"]) == 500
            assert (await activity(api, offset=BUSY + 100))["events"] == []
            assert (await activity(api, offset=-3, limit=2))["offset"] == 0
            # Filters page the same way: a quarter are queue.send, a third are p1's.
            sends = await activity(api, kind="queue.send", offset=2000, limit=500, upto=upto)
            assert sends["total"] == BUSY // 4 and len(sends["events"]) == 500
            assert {e["kind"] for e in sends["events"]} == {"queue.send"}
            p1 = await activity(api, participant="p1", upto=upto)
            assert p1["total"] == len([n for n in range(BUSY) if n % 3 == 1])
            # Reading from the top again shows the late events first.
            latest = await activity(api, limit=3)
            assert [e["subject"] for e in latest["events"]] == ["late49", "late48", "late47"]
            assert (latest["total"], latest["newer"]) == (BUSY + 50, 0)


async def test_the_ring_bounds_what_a_room_shows(api, localmesh_server) -> None:
    for n in range(1200):
        localmesh_server.state.timeline.record(ROOM, "call", "alice", f"s{n}")
    page = await activity(api, limit=500)
    assert (page["total"], page["kept"]) == (1000, 1000)
    assert page["events"][0]["subject"] == "s1199"
    assert (await activity(api, offset=999))["events"][0]["subject"] == "s200"


async def test_activity_needs_the_project_key(localmesh_server) -> None:
    localmesh_server.state.timeline.record(ROOM, "connect", "alice", detail="as agent")
    url = f"{localmesh_server.url}/studio/api/rooms/{ROOM}/activity?kind=connect&offset=0&limit=10"
    async with httpx.AsyncClient() as client:
        nobody = await client.get(url)
        assert nobody.status_code == 401 and "log in" in nobody.json()["error"]
        token = localmesh_server.mint_token(room=ROOM, name="alice")
        participant = await client.get(url, headers={"authorization": f"Bearer {token}"})
        assert participant.status_code == 403 and "participant token" in participant.json()["error"]
        page = await client.get(url, headers={"authorization": f"Bearer {localmesh_server.api_key}"})
        assert page.status_code == 200 and page.json()["events"][0]["participant"] == "alice"
        view = await client.get(f"{localmesh_server.url}/studio/rooms/{ROOM}/activity")
        assert view.status_code == 401 and 'name="key"' in view.text  # the page: the login form
