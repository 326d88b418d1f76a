"""Faults from outside the server's process: the admin HTTP API (API key only) and the
``localmesh fault add|list|clear`` commands, run as real processes against a live emulator."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx
import pytest
from meshagent.api import RoomException

# The sends here show a fault firing or not; the messages they leave are beside the point.
pytestmark = pytest.mark.localmesh_strict(queued_messages=False)

LOCALMESH = str(Path(sys.executable).parent / "localmesh")
TIMEOUT = 30.0


@pytest.fixture
def admin(localmesh_server):
    return f"{localmesh_server.url}/_localmesh/faults", {
        "authorization": f"Bearer {localmesh_server.api_key}"}


async def test_add_list_fire_and_remove_over_http(localmesh_server, meshagent_room, admin):
    url, headers = admin
    async with httpx.AsyncClient(headers=headers) as client:
        added = await client.post(url, json={
            "kind": "error", "toolkit": "queues", "tool": "send", "participant": "alice",
            "code": 1008, "message": "nope", "times": None})
        assert added.status_code == 201, added.text
        fault = added.json()
        assert (fault["kind"], fault["times"], fault["fired"]) == ("error", None, 0)
        async with meshagent_room("r", name="alice") as alice:
            for _ in range(2):
                with pytest.raises(RoomException, match="nope"):
                    await alice.queues.send(name="q", message={"n": 1})
        listed = (await client.get(url)).json()["faults"]
        assert [(f["id"], f["seen"], f["fired"]) for f in listed] == [(fault["id"], 2, 2)]
        assert "fired 2" in listed[0]["description"]
        assert (await client.get(f"{url}/{fault['id']}")).json()["fired"] == 2
        assert (await client.delete(f"{url}/{fault['id']}")).status_code == 204
        assert (await client.delete(f"{url}/{fault['id']}")).status_code == 404
        await client.post(url, json={"kind": "refuse"})
        assert (await client.delete(url)).status_code == 204
        assert (await client.get(url)).json() == {"faults": []}
    async with meshagent_room("r", name="alice") as alice:
        await alice.queues.send(name="q", message={"n": 1})  # nothing armed any more


async def test_only_the_api_key_may_manage_faults(localmesh_server, admin):
    url, _ = admin
    token = localmesh_server.mint_token(room="r", name="alice")
    async with httpx.AsyncClient() as client:
        for method, body in (("GET", None), ("POST", {"kind": "refuse"}), ("DELETE", None)):
            as_participant = await client.request(
                method, url, json=body, headers={"authorization": f"Bearer {token}"})
            assert as_participant.status_code == 403, (method, as_participant.text)
            assert "participant token" in as_participant.json()["error"]
            assert (await client.request(method, url, json=body)).status_code == 401
            wrong = await client.request(
                method, url, json=body, headers={"authorization": "Bearer ma-not-ours"})
            assert wrong.status_code == 401
    assert localmesh_server.faults.all(include_spent=True) == []


@pytest.mark.parametrize(("body", "message"), [
    ({"kind": "explode"}, "unknown fault kind 'explode'"),
    ({"kind": "delay"}, "a delay fault needs seconds"),
    ({"kind": "error", "after_bytes": 3}, "'after_bytes' does not apply to a error fault"),
    ({"toolkit": "queues"}, 'a JSON object with a "kind"'),
    ([1, 2], 'a JSON object with a "kind"'),
])
async def test_bad_faults_get_400_with_the_reason(admin, body, message):
    url, headers = admin
    async with httpx.AsyncClient(headers=headers) as client:
        answer = await client.post(url, json=body)
    assert answer.status_code == 400
    assert message in answer.json()["error"]


async def localmesh(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        LOCALMESH, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(TIMEOUT):
        out, err = await process.communicate()
    return process.returncode, out.decode(), err.decode()


async def test_the_fault_commands(localmesh_server, meshagent_room):
    where = ["--url", localmesh_server.url, "--api-key", localmesh_server.api_key]
    code, out, err = await localmesh(
        "fault", "add", "error", "--toolkit", "queues", "--tool", "send", "--participant", "alice",
        "--nth", "2", "--message", "second send refused", *where)
    assert code == 0, err
    assert out.strip() == ("#1 error on queues.send, participant 'alice': error 1008, "
                           "from match #2, 1 time(s); fired 0")
    async with meshagent_room("r", name="alice") as alice:
        await alice.queues.send(name="q", message={"n": 1})
        with pytest.raises(RoomException, match="second send refused"):
            await alice.queues.send(name="q", message={"n": 2})
    code, out, _ = await localmesh("fault", "list", *where)
    assert code == 0 and out.strip().endswith("fired 1")
    code, out, err = await localmesh("fault", "add", "drop-reply", "--toolkit", "storage",
                                     "--tool", "download", "--after-frames", "10", *where)
    assert code == 0 and "cut after 10 reply frame(s)" in out, err
    code, _, err = await localmesh("fault", "clear", "1", *where)
    assert (code, err.strip()) == (0, "removed fault #1")
    assert [f.kind for f in localmesh_server.faults.all(include_spent=True)] == ["drop_reply"]
    code, _, err = await localmesh("fault", "clear", *where)
    assert code == 0 and localmesh_server.faults.all(include_spent=True) == []


async def test_the_fault_commands_say_what_went_wrong(localmesh_server):
    where = ["--url", localmesh_server.url, "--api-key", localmesh_server.api_key]
    code, _, err = await localmesh("fault", "add", "explode", *where)
    assert code == 1 and "400: unknown fault kind 'explode'" in err
    token = localmesh_server.mint_token(room="r", name="alice")
    code, _, err = await localmesh("fault", "list", "--url", localmesh_server.url, "--api-key", token)
    assert code == 1 and "403: the faults API needs the project's API key" in err
    code, _, err = await localmesh("fault", "list", "--url", "http://127.0.0.1:9", "--api-key", "k")
    assert code == 1 and "cannot reach the emulator" in err
