"""`meshagent room storage ...` (the real CLI 0.56.0) against a real `localmesh serve`.

The CLI reads `domains.files` from `GET /config` and talks to the files API over HTTP; the
files it writes are the ones the room websocket serves.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from live_localmesh import MESHAGENT, live_server, run
from meshagent.api import ApiScope, ParticipantToken, RoomClient
from meshagent.api.websocket_protocol import WebSocketClientProtocol

pytestmark = [pytest.mark.compat, pytest.mark.slow]

ROOM = "quickstart"


async def test_room_storage_ls_get_cp_rm_exists_presign(tmp_path: Path):
    local = tmp_path / "work"
    (local / "notes" / "deep").mkdir(parents=True)
    (local / "poem.txt").write_text("roses are red\nünïcode ✓\n")
    (local / "notes" / "a.txt").write_text("A")
    (local / "notes" / "deep" / "b.md").write_text("B")

    async with live_server(tmp_path) as server:
        env = server.cli_env()

        async def storage(*args: str) -> tuple[int, str]:
            return await run(env, MESHAGENT, "room", "storage", *args, "--room", ROOM, cwd=local)

        # cp local -> room: one file, then a folder with -r
        code, out = await storage("cp", "poem.txt", "room://poem.txt")
        assert code == 0 and "Copied 'poem.txt' to 'poem.txt'" in out, out
        code, out = await storage("cp", "-r", "notes", "room://notes")
        assert code == 0, out

        # ls: the root, then the whole tree
        code, out = await storage("ls", "room://")
        assert code == 0 and out.split() == ["notes/", "poem.txt"], out
        code, out = await storage("ls", "-r", "room://")
        assert code == 0, out
        assert out.splitlines() == ["notes/", "  a.txt", "  deep/", "    b.md", "poem.txt"]

        # get prints the file
        code, out = await storage("get", "room://poem.txt")
        assert code == 0 and out == "roses are red\nünïcode ✓\n\n", repr(out)

        # exists, both ways
        code, out = await storage("exists", "room://notes/deep/b.md")
        assert code == 0 and "exists in remote storage" in out and "NOT" not in out, out
        code, out = await storage("exists", "room://nothing.txt")
        assert code == 0 and "does NOT exist" in out, out

        # cp room -> local: one file, then a folder with -r
        code, out = await storage("cp", "room://poem.txt", "back.txt")
        assert code == 0, out
        assert (local / "back.txt").read_text() == "roses are red\nünïcode ✓\n"
        code, out = await storage("cp", "-r", "room://notes", "copied")
        assert code == 0, out
        assert (local / "copied" / "deep" / "b.md").read_text() == "B"

        # presign: a URL anyone can GET for an hour
        code, out = await storage("presign", "room://poem.txt")
        assert code == 0, out
        presigned = json.loads(out)
        async with httpx.AsyncClient() as http:
            response = await http.get(presigned["url"])
        assert response.content == "roses are red\nünïcode ✓\n".encode()

        # rm: a folder needs -r (and is left alone without it)
        code, out = await storage("rm", "room://notes")
        assert code != 0 and "Use -r" in out, out
        code, out = await storage("rm", "-r", "room://notes")
        assert code == 0 and "Removed 'notes'" in out, out
        code, out = await storage("rm", "room://poem.txt")
        assert code == 0, out
        code, out = await storage("ls", "room://")
        assert code == 0 and out.strip() == "", out

        # a missing file is a clear error, not a crash
        code, out = await storage("get", "room://poem.txt")
        assert code != 0 and "404" in out and "was not found" in out, out


async def test_files_written_by_the_cli_are_the_rooms_files(tmp_path: Path):
    """What `cp` uploads, a room participant reads over the websocket, and the reverse."""
    (tmp_path / "in.txt").write_text("from the cli")
    async with live_server(tmp_path) as server:
        env = server.cli_env()
        code, out = await run(env, MESHAGENT, "room", "storage", "cp", str(tmp_path / "in.txt"),
                              "room://shared/in.txt", "--room", ROOM)
        assert code == 0, out

        token = ParticipantToken(name="reader")
        token.add_room_grant(ROOM)
        token.add_api_grant(ApiScope.agent_default())
        jwt = token.to_jwt(api_key=server.env["MESHAGENT_API_KEY"])
        protocol = WebSocketClientProtocol(url=f"ws://127.0.0.1:{server.port}/rooms/{ROOM}", token=jwt)
        async with RoomClient(protocol_factory=protocol.create_factory()) as room:
            assert (await room.storage.download(path="shared/in.txt")).data == b"from the cli"
            await room.storage.upload(path="shared/out.txt", data=b"from the room")

        code, out = await run(env, MESHAGENT, "room", "storage", "get", "room://shared/out.txt",
                              "--room", ROOM)
        assert code == 0 and out == "from the room\n", out

        # the top-level `files` group is the same commands; `config` and `version` read /config
        code, out = await run(env, MESHAGENT, "files", "ls", "-r", "room://", "--room", ROOM)
        assert code == 0 and out.split() == ["shared/", "in.txt", "out.txt"], out
        code, out = await run(env, MESHAGENT, "config", "get", "domains.files")
        assert code == 0 and out.strip() == f"{server.url}/files", out
        code, out = await run(env, MESHAGENT, "version")
        assert code == 0 and "server: 0.56.0" in out, out
