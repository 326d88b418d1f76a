"""Snapshots: export a server's rooms, import them into a fresh one; a clear refusal for
anything that is not an export this version can read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from localmesh.emulator.server import RoomServer
from localmesh.emulator.snapshot import MANIFEST, VERSION, Snapshot, SnapshotError
from localmesh.fixtures.worker import run_until_drained
from localmesh.worker import OpenAIResponsesAdapter, RequiredStorage, RoomClient, Worker


async def test_an_export_after_a_worker_ran_restores_its_file_and_queue(tmp_path: Path) -> None:
    export = tmp_path / "export"
    async with RoomServer(data_dir=tmp_path / "first") as first:
        token = first.mint_token(room="quickstart", name="poet")
        async with RoomClient(first.url, "quickstart", token) as room:
            # The real quickstart: the demo script writes poem.txt through the storage toolkit.
            worker = Worker(queue="tasks", requires=[RequiredStorage()],
                            llm_adapter=OpenAIResponsesAdapter(base_url=f"{first.url}/openai/v1"))
            await worker.start(room)
            await room.queues.send("tasks", {"prompt": "write a poem about AI"})
            stats = await run_until_drained(worker, first)
            await worker.stop()
            assert stats.processed == 1
            await room.queues.send("later", {"prompt": "for the next run"})
        poem = (await first.state.storage.read("quickstart", "poem.txt"))[1]
        await first.export(export)
        api_key = first.api_key

    manifest = json.loads((export / MANIFEST).read_text())
    assert (manifest["format"], manifest["version"]) == ("localmesh-export", VERSION)

    async with RoomServer(import_from=export) as second:  # in memory, fresh
        assert second.api_key == api_key  # the keys came along: old tokens still work
        async with RoomClient(second.url, "quickstart", token) as room:
            assert (await room.storage.download("poem.txt")).data == poem
            assert await room.queues.receive("later", wait=False) == {"prompt": "for the next run"}
            assert {q.name for q in await room.queues.list()} == {"tasks", "later"}


async def test_a_project_exports_and_imports_under_the_names_its_clients_use(tmp_path: Path) -> None:
    async with RoomServer() as server:
        source, target = server.add_project(), server.add_project()
        async with RoomClient(source.url, "r", source.mint_token(room="r", name="a")) as room:
            await room.storage.upload("docs/a.md", b"# A")
            await room.queues.send("q", "plain text")
            await room.queues.send("q", {"n": 2})
        await source.export(tmp_path / "x")
        assert await target.import_from(tmp_path / "x") == ["r"]
        async with RoomClient(target.url, "r", target.mint_token(room="r", name="b")) as room:
            assert (await room.storage.download("docs/a.md")).text == "# A"
            assert await room.queues.receive("q", wait=False) == "plain text"
            assert await room.queues.receive("q", wait=False) == {"n": 2}
        with pytest.raises(SnapshotError, match="already hold"):
            await source.import_from(tmp_path / "x")  # 'r' is not empty there
        await source.close()
        await target.close()


def _snapshot_dir(tmp_path: Path, manifest: dict) -> Path:
    target = tmp_path / "snap"
    target.mkdir()
    (target / MANIFEST).write_text(json.dumps(manifest))
    return target


def _manifest(**changes) -> dict:
    return {"format": "localmesh-export", "version": VERSION, "keys": [], "rooms": [], **changes}


def test_an_unknown_version_is_refused_with_the_versions_named(tmp_path: Path) -> None:
    source = _snapshot_dir(tmp_path, _manifest(version=99))
    with pytest.raises(SnapshotError) as error:
        Snapshot.read(source)
    assert "format version 99" in str(error.value) and f"version {VERSION} only" in str(error.value)


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        ({"format": "something-else", "version": 1}, "is not a localmesh export"),
        (_manifest(rooms=[{"name": "a/b", "queues": [], "files": []}]), "rooms[0].name"),
        (_manifest(rooms=[{"name": "r", "queues": [{"name": "q"}], "files": []}]), "queues[0]"),
        (_manifest(rooms=[{"name": "r", "queues": [], "files": [
            {"path": "../up", "sha256": "0", "mime_type": "x", "created_at": "", "updated_at": ""}]}]),
         "files[0].path"),
    ],
)
def test_a_broken_manifest_is_refused_saying_where(tmp_path: Path, manifest: dict, expected: str) -> None:
    with pytest.raises(SnapshotError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        Snapshot.read(_snapshot_dir(tmp_path, manifest))


def test_missing_or_altered_files_are_refused(tmp_path: Path) -> None:
    file = {"path": "a.txt", "sha256": "ab" * 32, "mime_type": "text/plain",
            "created_at": "t", "updated_at": "t"}
    source = _snapshot_dir(tmp_path, _manifest(rooms=[{"name": "r", "queues": [], "files": [file]}]))
    with pytest.raises(SnapshotError, match="missing"):
        Snapshot.read(source)
    (source / "files").mkdir()
    (source / "files" / file["sha256"]).write_bytes(b"not what was exported")
    with pytest.raises(SnapshotError, match="SHA-256"):
        Snapshot.read(source)
    with pytest.raises(SnapshotError, match="no localmesh-export.json"):
        Snapshot.read(tmp_path)


def test_an_export_never_overwrites_a_directory_that_is_not_an_export(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(SnapshotError, match="not empty"):
        Snapshot(_manifest()).write(tmp_path)
    assert (tmp_path / "mine.txt").read_text() == "keep me"


async def test_a_server_refuses_to_start_from_a_bad_export(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError):
        await RoomServer(import_from=tmp_path).start()
