"""The admin API (timeline, export, reset) and the commands over it: API key only."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from localmesh.emulator.server import RoomServer
from localmesh.emulator.snapshot import Snapshot
from localmesh.worker import RoomClient

LOCALMESH = [sys.executable, "-c", "from localmesh.cli import main; main()"]


async def _get(server: RoomServer, path: str, key: str | None, **params) -> httpx.Response:
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.get(f"{server.url}{path}", headers=headers, params=params)


async def test_the_timeline_endpoint_needs_the_api_key(localmesh_server: RoomServer) -> None:
    token = localmesh_server.mint_token(room="r", name="alice")
    async with RoomClient(localmesh_server.url, "r", token) as room:
        await room.queues.send("jobs", {"n": 1})
        await room.queues.drain("jobs")

    answer = await _get(localmesh_server, "/_localmesh/timeline", localmesh_server.api_key, room="r")
    assert answer.status_code == 200
    events = answer.json()["events"]
    assert [e["kind"] for e in events][:2] == ["connect", "queue.send"]
    assert events[1]["subject"] == "jobs" and "jobs #" in events[1]["line"]
    assert answer.json()["last"] == events[-1]["seq"]

    refused = await _get(localmesh_server, "/_localmesh/timeline", token, room="r")
    assert refused.status_code == 403
    assert "participant token" in refused.headers["x-localmesh-reason"]
    for key in (None, "not-a-token", "ma-AAAAAAAAAAAAAAAAAAAAAA-AAAAAAAAAAAAAAAAAAAAAA-nope"):
        assert (await _get(localmesh_server, "/_localmesh/timeline", key)).status_code == 401
    bad = await _get(localmesh_server, "/_localmesh/timeline", localmesh_server.api_key, since="x")
    assert bad.status_code == 400


async def test_a_project_key_sees_only_its_project(localmesh_server: RoomServer) -> None:
    project = localmesh_server.add_project()
    async with RoomClient(project.url, "r", project.mint_token(room="r", name="p")) as room:
        await room.storage.upload("mine.txt", b"x")
    main = await _get(localmesh_server, "/_localmesh/timeline", localmesh_server.api_key)
    assert main.json()["events"] == []
    own = await _get(localmesh_server, "/_localmesh/timeline", project.api_key)
    assert {e["room"] for e in own.json()["events"]} == {"r"}
    exported = await _get(localmesh_server, "/_localmesh/export", project.api_key)
    snapshot = Snapshot.from_tar(exported.content)
    assert [room["name"] for room in snapshot.rooms] == ["r"]
    assert [f["path"] for f in snapshot.rooms[0]["files"]] == ["mine.txt"]
    assert [k.key_id for k in snapshot.keys] == [project.key.key_id]
    async with httpx.AsyncClient() as http:
        reset = await http.post(f"{project.url}/_localmesh/reset",
                                headers={"Authorization": f"Bearer {project.api_key}"})
    assert reset.status_code == 204
    assert await project.rooms() == []
    await project.close()


async def test_a_waiting_timeline_request_answers_when_something_happens(
    localmesh_server: RoomServer,
) -> None:
    last = (await _get(localmesh_server, "/_localmesh/timeline", localmesh_server.api_key)).json()["last"]
    waiting = asyncio.create_task(
        _get(localmesh_server, "/_localmesh/timeline", localmesh_server.api_key, since=last, wait=20))
    token = localmesh_server.mint_token(room="r", name="late")
    async with RoomClient(localmesh_server.url, "r", token):
        answer = await asyncio.wait_for(waiting, 20)
    assert answer.json()["events"][0]["kind"] == "connect"


def _cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LOCALMESH, *args], env={**os.environ, **env}, cwd=cwd,
        capture_output=True, text=True, timeout=60,
    )


@pytest.mark.slow
async def test_the_timeline_and_export_commands(localmesh_server: RoomServer, tmp_path: Path) -> None:
    token = localmesh_server.mint_token(room="office", name="alice")
    async with RoomClient(localmesh_server.url, "office", token) as room:
        await room.storage.upload("report.txt", b"numbers")
        await room.queues.send("tasks", {"prompt": "summarise"})

    env = localmesh_server.env()
    shown = await asyncio.to_thread(_cli, "timeline", "--room", "office", env=env, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert "connect" in lines[0] and "alice" in lines[0]
    assert any("storage.write" in line and "report.txt (7 B)" in line for line in lines)
    assert any("queue.send" in line and "tasks #" in line for line in lines)

    exported = await asyncio.to_thread(_cli, "export", str(tmp_path / "snap"), env=env, cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    snapshot = Snapshot.read(tmp_path / "snap")
    (office,) = snapshot.rooms
    assert office["queues"] == [{"name": "tasks", "messages": [{"prompt": "summarise"}]}]
    assert (tmp_path / "snap" / "files" / office["files"][0]["sha256"]).read_bytes() == b"numbers"

    refused = await asyncio.to_thread(
        _cli, "timeline", "--api-key", token, env=env, cwd=tmp_path)
    assert refused.returncode == 1 and "403" in refused.stderr
    await localmesh_server.state.queues.drain("office", "tasks")


@pytest.mark.slow
async def test_timeline_follow_prints_events_as_they_happen(
    localmesh_server: RoomServer, tmp_path: Path
) -> None:
    process = await asyncio.create_subprocess_exec(
        *LOCALMESH, "timeline", "--room", "live", "-f",
        env={**os.environ, **localmesh_server.env()}, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        token = localmesh_server.mint_token(room="live", name="newcomer")
        async with RoomClient(localmesh_server.url, "live", token):
            line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert b"connect" in line and b"newcomer" in line
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()
