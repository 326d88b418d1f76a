"""Projects on one server: same room names, separate state; reset without a restart."""

from __future__ import annotations

import httpx
import pytest

from localmesh.emulator.server import RoomServer
from localmesh.worker import RoomClient, RoomError

SCRIPT = "rules: [{name: greet, match: {user: hi}, answer: {text: hello from %s}}]"


async def test_two_projects_each_have_their_own_room_of_the_same_name(
    localmesh_server: RoomServer,
) -> None:
    one, two = localmesh_server.add_project(), localmesh_server.add_project()
    try:
        async with (
            RoomClient(one.url, "r", one.mint_token(room="r", name="a")) as a,
            RoomClient(two.url, "r", two.mint_token(room="r", name="b")) as b,
        ):
            assert a.session.room_name == b.session.room_name == "r"  # what room_ready said
            await a.queues.send("jobs", {"from": "one"})
            await a.storage.upload("f.txt", b"one")
            assert await b.queues.receive("jobs", wait=False) is None
            assert not await b.storage.exists("f.txt")
            await b.storage.upload("f.txt", b"two")
            assert (await a.storage.download("f.txt")).text == "one"
            assert (await b.storage.download("f.txt")).text == "two"
            # A download link names the room, and still reads this project's file.
            url = await b.storage.download_url("f.txt")
            async with httpx.AsyncClient() as http:
                assert (await http.get(url)).text == "two"
            assert [p["attributes"]["name"] for p in one.participants("r")] == ["a"]
            assert await one.queues("r") == {"jobs": 1}
            assert await two.queues("r") == {"jobs": 0}  # its receive created it, empty
            assert await localmesh_server.project.rooms() == []  # the main project saw nothing
            assert await a.queues.receive("jobs", wait=False) == {"from": "one"}
    finally:
        await one.close()
        await two.close()


async def test_a_closed_project_forgets_its_rooms_and_refuses_its_key(localmesh_server: RoomServer) -> None:
    project = localmesh_server.add_project()
    token = project.mint_token(room="r", name="a")
    async with RoomClient(project.url, "r", token) as room:
        await room.queues.send("jobs", {"n": 1})
        await project.close()
        await room.wait_closed()
    assert await localmesh_server.state.store.room_keys() == []
    with pytest.raises(RoomError, match="403"):
        async with RoomClient(project.url, "r", token, reconnect=False):
            pass
    with pytest.raises(RuntimeError, match="temporary"):
        await localmesh_server.project.close()


async def test_the_llm_endpoint_plays_each_projects_script(localmesh_server: RoomServer) -> None:
    one, two = localmesh_server.add_project(), localmesh_server.add_project()
    one.llm.set_script("r", SCRIPT % "one")
    two.llm.set_script("r", SCRIPT % "two")

    async def ask(headers: dict[str, str]) -> str:
        async with httpx.AsyncClient() as http:
            response = await http.post(f"{localmesh_server.url}/openai/v1/responses",
                                       headers=headers, json={"model": "m", "input": "hi"})
        assert response.status_code == 200, response.text
        return response.json()["output"][0]["content"][0]["text"]

    token = one.mint_token(room="r", name="w")
    assert await ask({"Authorization": f"Bearer {token}"}) == "hello from one"
    # An API key speaks for its project; the header picks the room.
    assert await ask({"Authorization": f"Bearer {two.api_key}", "X-Localmesh-Room": "r"}) == "hello from two"
    assert [e.rule for e in one.llm.transcript("r")] == ["greet"]
    assert one.llm.transcripts().keys() == {"r"} and one.llm.unused_rules() == {}
    assert localmesh_server.llm.transcript("r") == []
    await one.close()
    await two.close()


async def test_reset_clears_a_room_without_a_restart(localmesh_server: RoomServer) -> None:
    localmesh_server.llm.set_script("r", _script())
    localmesh_server.faults.fail("storage", "upload", room="r", times=5)
    localmesh_server.faults.fail("storage", "upload", room="keep", times=1)
    token = localmesh_server.mint_token(room="r", name="a")
    async with RoomClient(localmesh_server.url, "r", token) as room:
        await room.queues.send("jobs", {"n": 1})
        await localmesh_server.state.storage.write("r", "f.txt", b"x", "text/plain", overwrite=False)
        await localmesh_server.reset("r")
        assert localmesh_server.history.events("r") == []
        assert await room.queues.list() == []
        assert not await room.storage.exists("f.txt")
        await room.storage.upload("g.txt", b"fault cleared")  # the room's fault is gone
        assert localmesh_server.llm.script("r") is localmesh_server.llm.default_script
        assert room.connected  # connections stay
    assert [f.room for f in localmesh_server.faults.all()] == ["keep"]
    await localmesh_server.reset()  # everything
    assert localmesh_server.faults.all() == []
    assert await localmesh_server.state.store.room_keys() == []


async def test_a_project_sets_its_own_long_poll_window(localmesh_server: RoomServer) -> None:
    project = localmesh_server.add_project()
    project.long_poll_window = 0.05
    assert project.long_poll_window == 0.05
    assert localmesh_server.long_poll_window == 20
    async with RoomClient(project.url, "r", project.mint_token(room="r", name="a")) as room:
        assert await room.queues.receive("empty", wait=True) is None  # back after 0.05 s
    await project.close()


def test_room_names_with_a_slash_are_refused(localmesh_server: RoomServer) -> None:
    with pytest.raises(ValueError, match="without '/'"):
        localmesh_server.project.mint_token(room="a/b", name="x")


def _script():
    from localmesh.scripted_llm import loads_script

    return loads_script(SCRIPT % "main", "test")


async def test_the_files_api_serves_each_project_its_own_rooms(localmesh_server: RoomServer) -> None:
    project = localmesh_server.add_project()

    def url(owner, path: str) -> str:
        return f"{localmesh_server.url}/files/{owner.project_id}/rooms/r/{path}"

    def auth(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    async with httpx.AsyncClient() as http:
        put = await http.put(url(project, "notes/a.txt"), content=b"project", headers=auth(project.api_key))
        assert put.status_code == 200, put.text
        # The main project's key may not reach the other project's rooms, nor its own see them.
        refused = await http.get(url(project, "notes/a.txt"), headers=auth(localmesh_server.api_key))
        assert refused.status_code == 403 and "another project" in refused.headers["x-localmesh-reason"]
        main = await http.get(url(localmesh_server, "notes/a.txt"), headers=auth(localmesh_server.api_key))
        assert main.status_code == 404
    async with RoomClient(project.url, "r", project.mint_token(room="r", name="a")) as room:
        assert (await room.storage.download("notes/a.txt")).text == "project"
    (write,) = project.history.events("r", kind="storage")
    assert (write.participant, write.subject, write.detail) == ("files-api:api-key", "notes/a.txt", 7)
    await project.close()
