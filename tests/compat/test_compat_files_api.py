"""The files API (what `meshagent room storage` uses) with the real SDK's files client."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from compat_helpers import PROMPT, installed_version, sdk_token
from meshagent.api import ApiScope
from meshagent.api.participant_token import StorageGrant, StoragePathGrant
from meshagent.api.room_server_client import RoomException
from packaging.version import Version
from targets import on_localmesh, room_name

# The SDK's files client (Meshagent.files, found through GET /config's domains.files), and the
# CLI's `meshagent room storage` on top of it, came in 0.54.0; before, the CLI used the room socket.
FILES_CLIENT = "0.54.0"
if installed_version() >= Version(FILES_CLIENT):
    from meshagent.api import Meshagent, TargetFilesClient
    from meshagent.api.client import (
        ConflictError,
        NotFoundError,
        PermissionDeniedError,
        ValidationErrorResponse,
    )

pytestmark = [
    pytest.mark.compat,
    pytest.mark.sdk(min=FILES_CLIENT, reason="the SDK's files client (Meshagent.files) came in 0.54.0"),
]

ROOM = "files"


@asynccontextmanager
async def files_client(
    server, token: str | None = None, room: str = ROOM
) -> AsyncIterator[TargetFilesClient]:
    async with Meshagent(base_url=server.url, token=token or server.api_key) as client:
        yield client.files.for_room(project_id=server.project_id, room_name=room_name(server, room))


def ours(server, text: str) -> str | None:
    """``text`` to match in an error on localmesh; on a real room, its own wording goes."""
    return text if on_localmesh(server) else None


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.localmesh_only(reason="localmesh's own URL and version in GET /config")
async def test_config_names_the_files_domain(server):
    async with Meshagent(base_url=server.url, token=server.api_key) as client:
        config = await client.get_config()
    assert config.domains.files == f"{server.url}/files"
    assert config.version == "0.56.0"


async def test_upload_stat_list_download_round_trip(server):
    data = os.urandom(700_000)  # several chunks each way
    async with files_client(server) as files:
        await files.upload("docs/big.bin", _chunks(data, 100_000))
        await files.upload("docs/ünï cödé #1.txt", b"text", content_type="text/plain")
        assert await files.download("docs/big.bin") == data
        assert await files.download("docs/ünï cödé #1.txt") == b"text"

        meta = await files.stat("docs/big.bin")
        assert (meta.size, meta.is_folder) == (len(data), False)
        assert meta.etag and meta.last_modified
        assert (await files.stat("docs")).is_folder
        assert await files.exists("docs") and not await files.exists("nothing/here")

        names = sorted((e.name, e.is_folder) for e in [e async for e in files.list("docs")])
        assert names == [("big.bin", False), ("ünï cödé #1.txt", False)]
        assert [e.name async for e in files.list("")] == ["docs"]


async def test_the_websocket_and_the_files_api_see_one_storage(server, client):
    async with files_client(server) as files, client(ROOM) as room:
        await room.storage.upload(path="from-ws.txt", data=b"ws")
        assert await files.download("from-ws.txt") == b"ws"
        await files.upload("from-http.txt", b"http")
        assert (await room.storage.download(path="from-http.txt")).data == b"http"


async def test_listing_pages_with_continuation_tokens(server):
    async with files_client(server) as files:
        for i in range(5):
            await files.upload(f"many/{i}.txt", b"x")
        first = await files.list_page("many", limit=2)
        assert [e.name for e in first.entries] == ["0.txt", "1.txt"]
        assert first.continuation_token is not None
        rest = [e.name async for e in files.list("many")]
        assert rest == [f"{i}.txt" for i in range(5)]


async def test_errors_map_to_the_statuses_the_sdk_knows(server):
    async with files_client(server) as files:
        await files.upload("d/a.txt", b"a")
        with pytest.raises(NotFoundError, match=ours(server, "3001")):
            await files.download("missing.txt")
        with pytest.raises(ConflictError, match=ours(server, "already exists")):
            await files.upload("d/a.txt", b"again", overwrite=False)
        with pytest.raises(ValidationErrorResponse, match=ours(server, "recursive")):
            await files.delete("d")
        assert await files.download("d/a.txt") == b"a"  # a refused change changes nothing
        await files.delete("d", recursive=True)
        assert not await files.exists("d")


async def test_copy_within_and_between_rooms_and_move(server):
    async with files_client(server) as files, files_client(server, room="other") as other:
        await files.upload("src/a.txt", b"a")
        await files.upload("src/deep/b.txt", b"b")
        await other.copy(files.location("src"), "copied")
        assert await other.download("copied/deep/b.txt") == b"b"
        await files.copy(files.location("src/a.txt"), "one.txt")
        assert await files.download("one.txt") == b"a"
        with pytest.raises(ConflictError):
            await files.copy(files.location("src/a.txt"), "one.txt", overwrite=False)
        with pytest.raises(ValidationErrorResponse, match=ours(server, "into itself")):
            await files.copy(files.location("src"), "src/inside")
        await files.move(files.location("one.txt"), "moved/one.txt")
        assert not await files.exists("one.txt") and await files.download("moved/one.txt") == b"a"


async def test_changes_over_http_fire_storage_events(server, client):
    async with client(ROOM) as room, files_client(server) as files:
        seen: list[tuple[str, str]] = []
        changed = asyncio.Event()

        def record(kind: str):
            def handler(**event):
                seen.append((kind, event.get("path") or event.get("destination_path")))
                changed.set()
            return handler

        room.storage.on("file.updated", record("updated"))
        room.storage.on("file.deleted", record("deleted"))
        room.storage.on("file.moved", record("moved"))
        for action, expected in [
            (files.upload("e.txt", b"1"), ("updated", "e.txt")),
            (files.move(files.location("e.txt"), "f.txt"), ("moved", "f.txt")),
            (files.delete("f.txt"), ("deleted", "f.txt")),
        ]:
            changed.clear()
            await action
            async with asyncio.timeout(PROMPT):
                await changed.wait()
            assert seen[-1] == expected


async def test_participant_tokens_keep_their_grants(server):
    read_only = ApiScope(storage=StorageGrant(paths=[StoragePathGrant(path="shared", read_only=True)]))
    reader = sdk_token(server, room=ROOM, name="reader", api=read_only)
    async with files_client(server) as owner:
        await owner.upload("shared/in.txt", b"in")
        await owner.upload("private/secret.txt", b"s")
    async with files_client(server, token=reader) as files:
        assert await files.download("shared/in.txt") == b"in"
        with pytest.raises(PermissionDeniedError, match=ours(server, "may not write")):
            await files.upload("shared/out.txt", b"x")
        with pytest.raises(PermissionDeniedError, match=ours(server, "may not read")):
            await files.download("private/secret.txt")
        permissions = await files.permissions("shared")
        assert permissions.actions == ["list", "read"]
    # a token for another room opens nothing here
    async with files_client(server, token=sdk_token(server, room="elsewhere")) as files:
        with pytest.raises(PermissionDeniedError):
            await files.download("shared/in.txt")


@pytest.mark.localmesh_only(reason="localmesh's own wording for an unknown project and agent files")
async def test_bad_credentials_and_unknown_projects_are_refused(server):
    async with Meshagent(base_url=server.url, token=None) as client:
        files = client.files.for_room(project_id=server.project_id, room_name=ROOM)
        with pytest.raises(RoomException, match="401"):
            await files.download("a.txt")
    async with Meshagent(base_url=server.url, token=server.api_key) as client:
        files = client.files.for_room(project_id="not-this-project", room_name=ROOM)
        with pytest.raises(NotFoundError, match="local project"):
            await files.download("a.txt")
        agent_files = client.files.for_agent(project_id=server.project_id, agent_name="a")
        with pytest.raises(RoomException, match="not emulated"):
            await agent_files.download("a.txt")


async def test_presigned_urls_allow_one_method_on_one_file(server):
    async with files_client(server) as files, httpx.AsyncClient(timeout=PROMPT) as http:
        await files.upload("p.txt", b"presigned")
        get = await files.presign("p.txt", method="GET", expires_in=60)
        assert get.method == "GET"
        assert (await http.get(get.url)).content == b"presigned"
        assert (await http.put(get.url, content=b"no")).status_code == 403  # GET only
        put = await files.presign("new.txt", method="PUT")
        assert (await http.put(put.url, content=b"via put")).status_code == 200
        assert await files.download("new.txt") == b"via put"
        if on_localmesh(server):  # localmesh's links name the file in their path
            tampered = get.url.replace("p.txt", "new.txt")
            assert (await http.get(tampered)).status_code == 403
