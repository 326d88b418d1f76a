"""The Studio's JSON API against a real server: what each view reads and changes.

Requests carry the project's API key as a bearer (the page uses its cookie; both reach the
same routes). Participants are real clients on the room websocket.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from localmesh.emulator import RoomServer
from localmesh.emulator.errors import QUEUE_NOT_FOUND

ROOM = "r"

# These tests arrange what the Studio shows (a queue holding a message, an armed fault):
# leftovers here are the point, not a bug for strict teardown to report.
pytestmark = pytest.mark.localmesh_strict(queued_messages=False, armed_faults=False)


@pytest_asyncio.fixture
async def api(localmesh_server: RoomServer) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"authorization": f"Bearer {localmesh_server.api_key}"}
    async with httpx.AsyncClient(base_url=f"{localmesh_server.url}/studio/api", headers=headers) as client:
        yield client


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return None if status == 204 else response.json()


# ---------------------------------------------------------------- rooms


async def test_rooms_come_from_what_they_hold_who_is_in_them_and_create(
    api, localmesh_server, localmesh_room
) -> None:
    await localmesh_server.state.queues.send("with-queue", "q", {"n": 1})
    await localmesh_server.state.storage.write("with-file", "a.txt", b"abc", "text/plain", overwrite=False)
    await localmesh_room("with-someone", name="alice")
    assert ok(await api.post("/rooms", json={"name": "made"}), 201)["name"] == "made"
    rooms = {room["name"]: room for room in ok(await api.get("/rooms"))["rooms"]}
    assert sorted(rooms) == ["made", "with-file", "with-queue", "with-someone"]
    assert rooms["with-queue"] | {} == {**rooms["with-queue"], "queues": 1, "messages": 1}
    assert (rooms["with-file"]["files"], rooms["with-file"]["bytes"]) == (1, 3)
    assert rooms["with-someone"]["participants"] == 1


async def test_creating_a_room_refuses_bad_names_and_duplicates(api, localmesh_server) -> None:
    ok(await api.post("/rooms", json={"name": "once"}), 201)
    again = await api.post("/rooms", json={"name": "once"})
    assert again.status_code == 409 and "already exists" in again.json()["error"]
    for bad in ("", "a/b", "x" * 200, "tab\there"):
        response = await api.post("/rooms", json={"name": bad})
        assert response.status_code == 400, bad
        assert "a room name is 1 to 128 characters" in response.json()["error"]
    assert (await api.post("/rooms", content=b"[1]")).status_code == 400
    await localmesh_server.state.queues.send("busy", "q", 1)  # a room that exists by its queue
    assert (await api.post("/rooms", json={"name": "busy"})).status_code == 409


async def test_the_room_lists_its_participants_live(api, localmesh_room) -> None:
    alice = await localmesh_room(ROOM, name="alice")
    await localmesh_room(ROOM, name="bob")
    detail = ok(await api.get(f"/rooms/{ROOM}"))
    assert [(p["name"], p["role"]) for p in detail["participants"]] == [("alice", "agent"), ("bob", "agent")]
    assert alice.participant_id in [p["id"] for p in detail["participants"]]
    await alice.close()
    detail = ok(await api.get(f"/rooms/{ROOM}"))
    assert [p["name"] for p in detail["participants"]] == ["bob"]


# ---------------------------------------------------------------- queues


async def test_peeking_pages_through_a_queue_and_takes_nothing(api, localmesh_server) -> None:
    queues = localmesh_server.state.queues
    for n in range(250):
        await queues.send(ROOM, "tasks", {"n": n})
    first = ok(await api.get(f"/rooms/{ROOM}/queues/tasks", params={"limit": 100}))
    assert first["size"] == 250 and first["offset"] == 0
    assert [m["message"]["n"] for m in first["messages"]] == list(range(100))
    assert [m["position"] for m in first["messages"]][:3] == [0, 1, 2]
    last = ok(await api.get(f"/rooms/{ROOM}/queues/tasks", params={"offset": 200, "limit": 100}))
    assert [m["message"]["n"] for m in last["messages"]] == list(range(200, 250))
    huge = ok(await api.get(f"/rooms/{ROOM}/queues/tasks", params={"offset": -5, "limit": 10_000}))
    assert huge["offset"] == 0 and len(huge["messages"]) == 250  # bounded to one page of 500
    # Receivers still get every message, in order, from the head.
    assert await queues.receive(ROOM, "tasks", wait=False) == {"n": 0}
    assert ok(await api.get(f"/rooms/{ROOM}/queues"))["queues"] == [
        {"name": "tasks", "size": 249, "waiting": 0}
    ]


async def test_a_missing_queue_is_404(api) -> None:
    response = await api.get(f"/rooms/{ROOM}/queues/nope")
    assert response.status_code == 404 and "'nope' does not exist" in response.json()["error"]


async def test_a_sent_message_reaches_a_waiting_receiver(api, localmesh_server) -> None:
    queues = localmesh_server.state.queues
    receiving = asyncio.create_task(queues.receive(ROOM, "tasks", window=10))
    await queues.until_waiting(ROOM, "tasks")
    assert ok(await api.get(f"/rooms/{ROOM}/queues"))["queues"][0]["waiting"] == 1
    sent = ok(
        await api.post(f"/rooms/{ROOM}/queues/tasks", json={"message": '{"prompt": "hi", "n": [1, 2]}'})
    )
    assert sent == {"name": "tasks", "sent": {"prompt": "hi", "n": [1, 2]}}
    assert await asyncio.wait_for(receiving, 5) == {"prompt": "hi", "n": [1, 2]}


async def test_sending_names_what_is_wrong(api, localmesh_server) -> None:
    bad = await api.post(f"/rooms/{ROOM}/queues/tasks", json={"message": '{"a": 1,}'})
    assert bad.status_code == 400
    assert bad.json()["error"] == (
        "the message is not valid JSON: Illegal trailing comma before end of object (line 1, column 8)"
    )
    no_text = await api.post(f"/rooms/{ROOM}/queues/tasks", json={"text": "{}"})
    assert no_text.status_code == 400 and "message" in no_text.json()["error"]
    settings = localmesh_server.state.settings
    settings.limits = settings.limits.replace(max_message_bytes=10)
    too_big = await api.post(f"/rooms/{ROOM}/queues/tasks", json={"message": '"' + "x" * 20 + '"'})
    assert too_big.status_code == 400 and "limit of 10 bytes" in too_big.json()["error"]
    assert ok(await api.get(f"/rooms/{ROOM}/queues"))["queues"] == []  # nothing was sent


async def test_drain_empties_and_delete_removes_a_queue(api, localmesh_server) -> None:
    for n in range(3):
        await localmesh_server.state.queues.send(ROOM, "tasks", n)
    ok(await api.delete(f"/rooms/{ROOM}/queues/tasks", params={"only": "messages"}), 204)
    assert ok(await api.get(f"/rooms/{ROOM}/queues"))["queues"] == [
        {"name": "tasks", "size": 0, "waiting": 0}
    ]
    ok(await api.delete(f"/rooms/{ROOM}/queues/tasks"), 204)
    assert ok(await api.get(f"/rooms/{ROOM}/queues"))["queues"] == []
    gone = await api.delete(f"/rooms/{ROOM}/queues/tasks", params={"only": "messages"})
    assert gone.status_code == 404
    assert (await api.delete(f"/rooms/{ROOM}/queues/tasks", params={"only": "x"})).status_code == 400


async def test_queue_names_with_slashes_and_spaces_work(api) -> None:
    ok(await api.post(f"/rooms/{ROOM}/queues/jobs/a b", json={"message": "1"}))
    page = ok(await api.get(f"/rooms/{ROOM}/queues/jobs/a b"))
    assert page["name"] == "jobs/a b" and page["messages"][0]["message"] == 1


# ---------------------------------------------------------------- storage


async def test_upload_list_info_move_and_delete(api, localmesh_room) -> None:
    watcher = await localmesh_room(ROOM, name="watcher")
    events: list[tuple[str, dict[str, Any]]] = []
    heard = asyncio.Event()
    for kind in ("storage.file.updated", "storage.file.moved", "storage.file.deleted"):
        watcher.on(kind, lambda type, header, payload: (events.append((type, header)), heard.set()))

    info = ok(await api.put(f"/rooms/{ROOM}/files/docs/a.json", content=b'{"x": 1}'), 201)
    assert (info["path"], info["size"], info["kind"], info["mime_type"]) == (
        "docs/a.json",
        8,
        "json",
        "application/json",
    )
    assert info["url"].startswith(f"/_localmesh/download/{ROOM}/docs/a.json?sig=")
    async with asyncio.timeout(5):
        await heard.wait()
    assert events[0] == (
        "storage.file.updated",
        {"path": "docs/a.json", "participant_id": "localmesh-studio"},
    )

    root = ok(await api.get(f"/rooms/{ROOM}/folders"))
    assert root == {"path": "", "entries": [{"name": "docs", "is_folder": True, "path": "docs"}]}
    docs = ok(await api.get(f"/rooms/{ROOM}/folders/docs"))
    assert [e["path"] for e in docs["entries"]] == ["docs/a.json"]
    assert ok(await api.get(f"/rooms/{ROOM}/files/docs")) == {"path": "docs", "is_folder": True}

    clash = await api.put(f"/rooms/{ROOM}/files/docs/a.json", content=b"{}")
    assert clash.status_code == 409 and "already exists" in clash.json()["error"]
    assert (
        ok(await api.put(f"/rooms/{ROOM}/files/docs/a.json?overwrite=true", content=b"{}"), 201)["size"] == 2
    )

    ok(await api.post(f"/rooms/{ROOM}/move", json={"source": "docs", "destination": "archive"}), 204)
    assert ok(await api.get(f"/rooms/{ROOM}/files/archive/a.json"))["size"] == 2
    assert (await api.get(f"/rooms/{ROOM}/files/docs/a.json")).status_code == 404

    folder = await api.delete(f"/rooms/{ROOM}/files/archive")
    assert folder.status_code == 400 and "recursive" in folder.json()["error"]
    ok(await api.delete(f"/rooms/{ROOM}/files/archive?recursive=true"), 204)
    assert ok(await api.get(f"/rooms/{ROOM}/folders"))["entries"] == []
    kinds = [kind for kind, _ in events]
    assert "storage.file.moved" in kinds and kinds[-1] == "storage.file.deleted"


async def test_paths_are_checked_like_the_room_checks_them(api) -> None:
    for bad in ("a/%2E%2E/b.txt", "a//b.txt", "bad%01name", ".meshagent-directory"):
        response = await api.put(f"/rooms/{ROOM}/files/{bad}", content=b"x")
        assert response.status_code == 400, bad
    missing = await api.get(f"/rooms/{ROOM}/files/none.txt")
    assert missing.status_code == 404 and "'none.txt' was not found" in missing.json()["error"]


async def test_a_file_downloads_through_its_link(api, localmesh_server) -> None:
    ok(
        await api.put(
            f"/rooms/{ROOM}/files/pic.png", content=b"\x89PNG fake", headers={"content-type": "image/png"}
        ),
        201,
    )
    info = ok(await api.get(f"/rooms/{ROOM}/files/pic.png"))
    assert (info["kind"], info["mime_type"]) == ("image", "image/png")
    async with httpx.AsyncClient(base_url=localmesh_server.url) as anonymous:
        response = await anonymous.get(info["url"])  # the signed link itself is the permission
    assert response.content == b"\x89PNG fake" and response.headers["content-type"] == "image/png"


@pytest.mark.parametrize(
    ("name", "mime", "kind"),
    [
        ("a.txt", "text/plain", "text"),
        ("a.md", "text/markdown", "text"),
        ("a.json", "application/json", "json"),
        ("a.jsonl", "application/octet-stream", "text"),
        ("a.svg", "image/svg+xml", "image"),
        ("a.bin", "application/octet-stream", "binary"),
        ("a.pdf", "application/pdf", "binary"),
        ("a.yaml", "application/yaml", "text"),
    ],
)
def test_the_viewer_kind_of_a_file(name: str, mime: str, kind: str) -> None:
    from localmesh.emulator.studio.data import view_kind

    assert view_kind(mime, name) == kind


# ---------------------------------------------------------------- LLM and faults


async def test_the_llm_view_groups_turns_and_marks_unmatched_requests(api, localmesh_server) -> None:
    from localmesh.scripted_llm import loads_script

    localmesh_server.llm.set_script(
        ROOM,
        loads_script(
            """
rules:
  - name: write
    match: {user: "(?i)write", tool_result: false}
    answer: {calls: [{namespace: storage, name: write_file, arguments: {path: a.txt, text: hi}}]}
  - name: done
    match: {tool_result: {name: write_file}}
    answer: {text: written}
""",
            "test script",
        ),
    )
    player = localmesh_server.llm.player(ROOM)
    tools = [{"type": "namespace", "name": "storage", "tools": [{"type": "function", "name": "write_file"}]}]
    first = player.play({"model": "m", "instructions": "Be brief.", "input": "write it", "tools": tools})
    call = first.response["output"][0]
    player.play(
        {
            "model": "m",
            "input": [
                {"role": "user", "content": "write it"},
                call,
                {"type": "function_call_output", "call_id": call["call_id"], "output": "saved"},
            ],
        }
    )
    player.play({"model": "m", "input": "something else"})

    llm = ok(await api.get(f"/rooms/{ROOM}/llm"))
    assert (llm["requests"], llm["unmatched"], llm["script"]["rules"]) == (3, 1, 2)
    [conversation, other] = llm["conversations"]
    asked, answered = conversation["turns"]
    assert asked["instructions"] == "Be brief." and asked["tools"] == ["storage.write_file"]
    assert asked["input"] == [{"kind": "message", "role": "user", "text": "write it"}]
    assert asked["rule"] == "write" and not asked["unmatched"]
    assert asked["answer"][0] | {"call_id": None} == {
        "kind": "tool_call",
        "name": "storage.write_file",
        "arguments": {"path": "a.txt", "text": "hi"},
        "call_id": None,
    }
    # A client that resends the history: only what it added is shown.
    assert answered["input"] == [{"kind": "tool_result", "call_id": call["call_id"], "text": "saved"}]
    assert answered["answer"][0]["text"] == "written"
    [unmatched] = other["turns"]
    assert unmatched["unmatched"] and unmatched["rule"] is None and unmatched["error"]["status"] == 400
    assert "no script rule matched" in unmatched["error"]["message"]


async def test_faults_show_their_fired_counts_and_clear_per_room(
    api, localmesh_server, localmesh_room
) -> None:
    faults = localmesh_server.faults
    faults.fail("queues", "send", times=3, room=ROOM, code=1001, message="not today")
    faults.fail("storage", "upload", times=None)
    faults.fail("queues", "list", room="other")
    room = await localmesh_room(ROOM)
    with pytest.raises(Exception, match="not today"):
        await room.queues.send("tasks", {"n": 1})
    shown = ok(await api.get("/faults", params={"room": ROOM}))["faults"]
    assert [(f["toolkit"], f["tool"], f["room"], f["remaining"], f["fired"]) for f in shown] == [
        ("queues", "send", ROOM, 2, 1),
        ("storage", "upload", None, None, 0),
    ]
    assert len(ok(await api.get("/faults"))["faults"]) == 3
    ok(await api.delete("/faults", params={"room": ROOM}), 204)
    assert [f["room"] for f in ok(await api.get("/faults"))["faults"]] == [None, "other"]
    ok(await api.delete("/faults"), 204)
    assert ok(await api.get("/faults"))["faults"] == []


async def test_unknown_api_paths_are_404_json(api) -> None:
    response = await api.get("/nothing/here")
    assert response.status_code == 404 and response.json() == {"error": "no Studio API at /nothing/here"}


def test_queue_not_found_code_is_what_the_room_uses() -> None:
    assert QUEUE_NOT_FOUND == 5001


async def test_arming_a_fault_checks_what_it_is_given(api, localmesh_server, localmesh_room) -> None:
    armed = ok(
        await api.post(
            "/faults",
            params={"room": ROOM},
            json={"toolkit": "queues", "tool": "send", "times": 1, "code": 1001},
        ),
        201,
    )
    assert armed | {"message": ""} == {
        "toolkit": "queues",
        "tool": "send",
        "room": ROOM,
        "code": 1001,
        "message": "",
        "remaining": 1,
        "fired": 0,
    }
    room = await localmesh_room(ROOM)
    with pytest.raises(Exception, match="injected a failure into queues.send"):
        await room.queues.send("tasks", {"n": 1})
    await room.queues.send("tasks", {"n": 2})  # used up
    for bad, reason in [
        ({"tool": "send"}, "needs the toolkit and the tool"),
        ({"toolkit": "queues", "tool": "send", "times": 0}, "at least 1"),
        ({"toolkit": "queues", "tool": "send", "times": True}, "at least 1"),
        ({"toolkit": "queues", "tool": "send", "code": "x"}, "room error code"),
    ]:
        response = await api.post("/faults", json=bad)
        assert response.status_code == 400 and reason in response.json()["error"], bad
    assert ok(await api.get("/faults"))["faults"] == []


SAVE_SCRIPT = """
rules:
  - name: save
    match: {user: "(?i)save", tool_result: false}
    answer: {calls: [{name: write_file, arguments: {path: a.txt, text: hi}}]}
  - name: saved
    match: {tool_result: {name: write_file}}
    answer: {text: done}
"""


async def test_the_llm_view_reads_every_provider_the_same_way(api, localmesh_server) -> None:
    from localmesh.scripted_llm import loads_script

    localmesh_server.llm.set_script(ROOM, loads_script(SAVE_SCRIPT, "save script"))
    key = {"x-localmesh-room": ROOM, "authorization": f"Bearer {localmesh_server.api_key}"}
    async with httpx.AsyncClient(base_url=localmesh_server.url, headers=key) as llm:
        # Anthropic Messages: a tool_use answer, then the tool_result turn.
        tools = [{"name": "write_file", "input_schema": {"type": "object"}}]
        first = await llm.post(
            "/anthropic/v1/messages",
            json={
                "model": "claude-x",
                "max_tokens": 100,
                "system": "Be brief.",
                "tools": tools,
                "messages": [{"role": "user", "content": "save it"}],
            },
        )
        assert first.status_code == 200, first.text
        use = first.json()["content"][0]
        second = await llm.post(
            "/anthropic/v1/messages",
            json={
                "model": "claude-x",
                "max_tokens": 100,
                "tools": tools,
                "messages": [
                    {"role": "user", "content": "save it"},
                    {"role": "assistant", "content": [use]},
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": use["id"], "content": "ok"}],
                    },
                ],
            },
        )
        assert second.status_code == 200, second.text
        # Chat Completions, one turn.
        chat = await llm.post(
            "/openai/v1/chat/completions",
            json={
                "model": "gpt-x",
                "messages": [{"role": "system", "content": "Sys."}, {"role": "user", "content": "save"}],
                "tools": [{"type": "function", "function": {"name": "write_file", "parameters": {}}}],
            },
        )
        assert chat.status_code == 200, chat.text

    turns = [t for c in ok(await api.get(f"/rooms/{ROOM}/llm"))["conversations"] for t in c["turns"]]
    anthropic_first, anthropic_second, chat_turn = sorted(turns, key=lambda t: t["index"])
    assert (anthropic_first["provider"], anthropic_first["api"], anthropic_first["model"]) == (
        "anthropic",
        "messages",
        "claude-x",
    )
    assert anthropic_first["instructions"] == "Be brief." and anthropic_first["tools"] == ["write_file"]
    assert anthropic_first["input"] == [{"kind": "message", "role": "user", "text": "save it"}]
    assert anthropic_first["answer"][0]["kind"] == "tool_call"
    assert anthropic_first["answer"][0]["arguments"] == {"path": "a.txt", "text": "hi"}
    assert anthropic_second["input"] == [{"kind": "tool_result", "call_id": use["id"], "text": "ok"}]
    assert anthropic_second["rule"] == "saved" and anthropic_second["answer"][0]["text"] == "done"
    assert (chat_turn["api"], chat_turn["instructions"], chat_turn["tools"]) == (
        "chat.completions",
        "Sys.",
        ["write_file"],
    )
    assert chat_turn["answer"][0]["name"] == "write_file" and chat_turn["rule"] == "save"
