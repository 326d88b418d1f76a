"""Who may join a room and what they may do there, with tokens made by the real SDK."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
import websockets
from compat_helpers import PROMPT, sdk_client, sdk_token
from meshagent.api import ApiScope, RoomException
from meshagent.api.participant_token import (
    QueuesGrant,
    StorageGrant,
    StoragePathGrant,
)
from targets import on_localmesh
from websockets.exceptions import InvalidStatus

from localmesh.protocol.tokens import ApiKey

pytestmark = pytest.mark.compat

ROOM = "r"


def _other_key(server, *, same_id: bool) -> str:
    """An ``ma-`` key the server does not know: its key id with another secret, or all new."""
    mine = ApiKey.parse(server.api_key)
    if same_id:
        return ApiKey(mine.key_id, mine.project_id, "not-the-right-secret-" + "x" * 20).text
    return ApiKey.generate(mine.project_id).text


def _refused_tokens(server) -> dict[str, tuple[str, str]]:
    """name -> (token, a word the refusal reason must contain)."""
    past = datetime.now(UTC) - timedelta(minutes=5)
    return {
        "bad signature": (
            sdk_token(server, room=ROOM, api_key=_other_key(server, same_id=True)), "signature"),
        "unknown key id": (
            sdk_token(server, room=ROOM, api_key=_other_key(server, same_id=False)), "key id"),
        "expired": (sdk_token(server, room=ROOM, api_key=server.api_key, expiration=past),
                    "expired"),
        "other room": (sdk_token(server, room="elsewhere"), "elsewhere"),
        "no api grant": (sdk_token(server, room=ROOM, with_api=False), "api grant"),
        "plain secret, wrong": (sdk_token(server, room=ROOM, token="guessed-" + "y" * 30),
                                "signature"),
        "not a jwt": ("definitely.not.a-jwt", "JWT"),
    }


REFUSALS = ["bad signature", "unknown key id", "expired", "other room", "no api grant",
            "plain secret, wrong", "not a jwt"]


@pytest.mark.parametrize("case", REFUSALS)
async def test_real_client_is_refused_promptly(server, case):
    jwt_text, _ = _refused_tokens(server)[case]
    async with asyncio.timeout(PROMPT):  # a 401 or a close would make the SDK retry for ever
        with pytest.raises(RoomException) as raised:
            async with sdk_client(server, ROOM, jwt_text):
                pass
    assert "403" in str(raised.value)
    if on_localmesh(server):
        assert server.participants(ROOM) == []


@pytest.mark.localmesh_only(reason="localmesh's refusal reasons (x-localmesh-reason header)")
@pytest.mark.parametrize("case", REFUSALS)
async def test_refusal_is_http_403_with_a_reason(server, case):
    jwt_text, reason_word = _refused_tokens(server)[case]
    with pytest.raises(InvalidStatus) as raised:
        async with websockets.connect(
            server.room_url(ROOM), additional_headers={"Authorization": f"Bearer {jwt_text}"},
            open_timeout=PROMPT,
        ):
            pass
    response = raised.value.response
    assert response.status_code == 403
    reason = response.headers["x-localmesh-reason"]
    assert reason_word.lower() in reason.lower(), reason
    assert json.loads(response.body) == {"error": reason}


async def test_missing_authorization_header_is_403(server):
    with pytest.raises(InvalidStatus) as raised:
        async with websockets.connect(server.room_url(ROOM), open_timeout=PROMPT):
            pass
    assert raised.value.response.status_code == 403
    if on_localmesh(server):
        assert "Authorization" in raised.value.response.headers["x-localmesh-reason"]


async def test_token_minted_with_the_plain_secret_is_accepted(server):
    jwt_text = sdk_token(server, room=ROOM, name="plain", token=ApiKey.parse(server.api_key).secret)
    async with sdk_client(server, ROOM, jwt_text) as room:
        assert room.local_participant.get_attribute("name") == "plain"
        await room.queues.send(name="q", message={"ok": True})
        assert await room.queues.receive(name="q", wait=False) == {"ok": True}


async def test_token_with_future_expiry_is_accepted(server):
    later = datetime.now(UTC) + timedelta(hours=1)
    jwt_text = sdk_token(server, room=ROOM, api_key=server.api_key, expiration=later)
    async with sdk_client(server, ROOM, jwt_text) as room:
        assert await room.queues.list() == []


async def test_queue_send_and_receive_lists_are_enforced(server):
    api = ApiScope(queues=QueuesGrant(send=["outbox"], receive=["inbox"]))
    async with (
        sdk_client(server, ROOM, sdk_token(server, room=ROOM, name="limited", api=api)) as limited,
        sdk_client(server, ROOM, sdk_token(server, room=ROOM, name="admin")) as admin,
    ):
        await limited.queues.send(name="outbox", message={"a": 1})
        assert await admin.queues.receive(name="outbox", wait=False) == {"a": 1}
        await admin.queues.send(name="inbox", message={"b": 2})
        assert await limited.queues.receive(name="inbox", wait=False) == {"b": 2}

        for denied in (
            limited.queues.send(name="inbox", message={}),
            limited.queues.send(name="elsewhere", message={}),
            limited.queues.receive(name="outbox", wait=False),
            limited.queues.drain(name="outbox"),
        ):
            with pytest.raises(RoomException) as raised:
                await denied
            assert raised.value.code == 1001
            assert "inbox" in str(raised.value) or "outbox" in str(raised.value) or (
                "elsewhere" in str(raised.value))
        # the refused send put nothing anywhere
        assert "elsewhere" not in {q.name for q in await admin.queues.list()}


async def test_queue_denial_names_the_queue(server):
    api = ApiScope(queues=QueuesGrant(send=["a"], receive=["a"]))
    async with sdk_client(server, ROOM, sdk_token(server, room=ROOM, api=api)) as room:
        with pytest.raises(RoomException) as raised:
            await room.queues.send(name="forbidden-queue", message={})
        assert raised.value.code == 1001
        assert "forbidden-queue" in str(raised.value)


async def test_queue_list_can_be_withheld(server):
    api = ApiScope(queues=QueuesGrant(list=False))
    async with sdk_client(server, ROOM, sdk_token(server, room=ROOM, api=api)) as room:
        await room.queues.send(name="q", message={})
        with pytest.raises(RoomException) as raised:
            await room.queues.list()
        assert raised.value.code == 1001


async def test_storage_path_grants_with_read_only_paths(server):
    api = ApiScope(storage=StorageGrant(paths=[
        StoragePathGrant(path="shared", read_only=True),
        StoragePathGrant(path="out"),
    ]))
    async with (
        sdk_client(server, ROOM, sdk_token(server, room=ROOM, name="admin")) as admin,
        sdk_client(server, ROOM, sdk_token(server, room=ROOM, name="agent", api=api)) as agent,
    ):
        await admin.storage.upload(path="shared/input.txt", data=b"read me")
        await admin.storage.upload(path="private/secret.txt", data=b"no")

        # read-only: read and list allowed
        assert (await agent.storage.download(path="shared/input.txt")).data == b"read me"
        assert [e.name for e in await agent.storage.list(path="shared")] == ["input.txt"]
        assert await agent.storage.exists(path="shared/input.txt")
        url = await agent.storage.download_url(path="shared/input.txt")
        assert url.startswith(server.url if on_localmesh(server) else "http")

        # read-only: writes of every kind refused with 1001
        for denied in (
            agent.storage.upload(path="shared/new.txt", data=b"x"),
            agent.storage.upload(path="shared/input.txt", data=b"x", overwrite=True),
            agent.storage.delete("shared/input.txt"),
            agent.storage.move(source_path="shared/input.txt", destination_path="out/stolen.txt"),
        ):
            with pytest.raises(RoomException) as raised:
                await denied
            assert raised.value.code == 1001, raised.value
        assert (await admin.storage.download(path="shared/input.txt")).data == b"read me"
        assert not await admin.storage.exists(path="shared/new.txt")

        # writable path: everything allowed
        await agent.storage.upload(path="out/result.txt", data=b"done")
        await agent.storage.move(source_path="out/result.txt", destination_path="out/final.txt")
        await agent.storage.delete("out/final.txt")

        # outside every rule: nothing
        for denied in (
            agent.storage.download(path="private/secret.txt"),
            agent.storage.upload(path="private/x.txt", data=b"x"),
            agent.storage.exists(path="private/secret.txt"),
            agent.storage.download_url(path="private/secret.txt"),
        ):
            with pytest.raises(RoomException) as raised:
                await denied
            assert raised.value.code == 1001, raised.value


async def test_token_without_storage_section_is_denied_storage(server):
    api = ApiScope(queues=QueuesGrant())
    async with sdk_client(server, ROOM, sdk_token(server, room=ROOM, api=api)) as room:
        await room.queues.send(name="q", message={})  # the granted API works
        for denied in (
            room.storage.exists(path="a.txt"),
            room.storage.list(path=""),
            room.storage.upload(path="a.txt", data=b"x"),
            room.storage.download(path="a.txt"),
        ):
            with pytest.raises(RoomException) as raised:
                await denied
            assert raised.value.code == 1001
            assert "storage" in str(raised.value)


async def test_token_without_queues_section_is_denied_queues(server):
    api = ApiScope(storage=StorageGrant())
    async with sdk_client(server, ROOM, sdk_token(server, room=ROOM, api=api)) as room:
        await room.storage.upload(path="fine.txt", data=b"ok")
        with pytest.raises(RoomException) as raised:
            await room.queues.send(name="q", message={})
        assert raised.value.code == 1001


async def test_toolkits_not_in_the_api_grant_are_refused_by_name(server):
    api = ApiScope(queues=QueuesGrant())  # no developer, no messaging section
    async with sdk_client(server, ROOM, sdk_token(server, room=ROOM, api=api)) as room:
        with pytest.raises(RoomException) as raised:
            await room.developer.log(type="note", data={"x": 1})
        assert raised.value.code == 1001
        assert "developer" in str(raised.value)
        with pytest.raises(RoomException) as raised:
            await room.invoke(toolkit="messaging", tool="enable", input={})
        assert raised.value.code == 1001 and "messaging" in str(raised.value)
        if on_localmesh(server):
            assert server.developer_logs(ROOM) == []


@pytest.mark.sdk(min="0.54.0", reason="the storage grant's `files` policy (FilesPolicy) came in 0.54.0")
async def test_storage_files_policy_made_by_the_sdk_is_enforced(server):
    from meshagent.api.file_permissions import FilePathRule, FilesPolicy

    api = ApiScope(storage=StorageGrant(files=FilesPolicy(paths=[
        FilePathRule(path="inbox", recursive=True, actions=["list", "read", "presign"]),
        FilePathRule(path="outbox", recursive=True, actions=["list", "read", "write"],
                     excluded_paths=["outbox/private"]),
    ])))
    async with (
        sdk_client(server, ROOM, sdk_token(server, room=ROOM, name="admin")) as admin,
        sdk_client(server, ROOM, sdk_token(server, room=ROOM, name="agent", api=api)) as agent,
    ):
        await admin.storage.upload(path="inbox/task.txt", data=b"do it")
        await admin.storage.upload(path="outbox/private/notes.txt", data=b"mine")

        assert (await agent.storage.download(path="inbox/task.txt")).data == b"do it"
        assert (await agent.storage.download_url(path="inbox/task.txt")).startswith("http")
        await agent.storage.upload(path="outbox/result.txt", data=b"done")
        assert [e.name for e in await agent.storage.list(path="inbox")] == ["task.txt"]

        for denied in (
            agent.storage.upload(path="inbox/new.txt", data=b"x"),  # no write in inbox
            agent.storage.delete("outbox/result.txt"),  # no delete anywhere
            agent.storage.download_url(path="outbox/result.txt"),  # no presign in outbox
            agent.storage.download(path="outbox/private/notes.txt"),  # excluded
            agent.storage.upload(path="elsewhere.txt", data=b"x"),  # outside every rule
        ):
            with pytest.raises(RoomException) as raised:
                await denied
            assert raised.value.code == 1001, raised.value
        assert (await admin.storage.download(path="outbox/result.txt")).data == b"done"
        assert not await admin.storage.exists(path="inbox/new.txt")
