"""State snapshots: export the rooms of a project to a directory, and import them again.

The format (version 1), documented in docs/snapshots.md::

    DIR/localmesh-export.json     the manifest: format, version, keys, rooms, queues, files
    DIR/files/<sha256>            each file's bytes, named by their SHA-256 (stored once)

A snapshot holds what outlives a process: the project's API keys, every room's queues
with their messages in line order, and every file with its type and times. It holds no
connections, LLM scripts, transcripts, timeline or faults. A reader refuses a manifest of
another format or of a version it does not know, with a message saying which.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from localmesh.protocol.tokens import ApiKey

from .namespaces import check_room_name
from .paths import InvalidPath, normalize_path
from .store import FileRow, Store

if TYPE_CHECKING:
    from .queues import Queues

FORMAT = "localmesh-export"
VERSION = 1
MANIFEST = "localmesh-export.json"
BLOBS = "files"


class SnapshotError(ValueError):
    """A snapshot that cannot be written or read; the message says why and where."""


@dataclass
class Snapshot:
    manifest: dict[str, Any]
    blobs: dict[str, bytes] = field(default_factory=dict)  # sha256 hex -> bytes

    @property
    def rooms(self) -> list[dict[str, Any]]:
        return self.manifest["rooms"]

    @property
    def keys(self) -> list[ApiKey]:
        return [ApiKey(k["key_id"], k["project_id"], k["secret"]) for k in self.manifest["keys"]]

    # ------------------------------------------------------------ writing

    def write(self, directory: str | Path) -> Path:
        """Write to ``directory``: it must be missing, empty, or an earlier export (replaced)."""
        target = Path(directory)
        if target.exists():
            if not target.is_dir():
                raise SnapshotError(f"{target} exists and is not a directory")
            entries = {entry.name for entry in target.iterdir()}
            if entries and MANIFEST not in entries:
                raise SnapshotError(
                    f"{target} is not empty and holds no {MANIFEST}: export into a new directory"
                )
            if BLOBS in entries:
                shutil.rmtree(target / BLOBS)
        (target / BLOBS).mkdir(parents=True, exist_ok=True)
        for digest, data in self.blobs.items():
            (target / BLOBS / digest).write_bytes(data)
        text = json.dumps(self.manifest, indent=2, ensure_ascii=False, sort_keys=True)
        (target / MANIFEST).write_text(text + "\n", encoding="utf-8")
        return target

    def to_tar(self) -> bytes:
        """The same files as ``write``, in an uncompressed tar archive (for HTTP)."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            text = json.dumps(self.manifest, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
            for name, data in [(MANIFEST, text.encode()), *(
                (f"{BLOBS}/{digest}", blob) for digest, blob in self.blobs.items()
            )]:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
        return buffer.getvalue()

    # ------------------------------------------------------------ reading

    @classmethod
    def read(cls, directory: str | Path) -> Snapshot:
        source = Path(directory)
        manifest_path = source / MANIFEST
        if not manifest_path.is_file():
            raise SnapshotError(f"{source} is not a localmesh export: it has no {MANIFEST}")
        manifest = _load_manifest(manifest_path.read_bytes(), str(manifest_path))
        blobs: dict[str, bytes] = {}
        for digest in _digests(manifest):
            path = source / BLOBS / digest
            if not path.is_file():
                raise SnapshotError(f"{source}: the file {BLOBS}/{digest} is missing")
            blobs[digest] = path.read_bytes()
        return cls._checked(manifest, blobs, str(source))

    @classmethod
    def from_tar(cls, data: bytes, source: str = "the export archive") -> Snapshot:
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
                members = {m.name: m for m in archive.getmembers() if m.isfile()}
                if MANIFEST not in members:
                    raise SnapshotError(f"{source} holds no {MANIFEST}")
                manifest = _load_manifest(_read_member(archive, members[MANIFEST]), source)
                blobs = {}
                for digest in _digests(manifest):
                    member = members.get(f"{BLOBS}/{digest}")
                    if member is None:
                        raise SnapshotError(f"{source}: the file {BLOBS}/{digest} is missing")
                    blobs[digest] = _read_member(archive, member)
        except tarfile.TarError as error:
            raise SnapshotError(f"{source} is not a tar archive: {error}") from None
        return cls._checked(manifest, blobs, source)

    @classmethod
    def _checked(cls, manifest: dict[str, Any], blobs: dict[str, bytes], source: str) -> Snapshot:
        for digest, data in blobs.items():
            if hashlib.sha256(data).hexdigest() != digest:
                raise SnapshotError(f"{source}: {BLOBS}/{digest} does not match its SHA-256")
        return cls(manifest, blobs)


def _read_member(archive: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = archive.extractfile(member)
    assert handle is not None
    return handle.read()


def _load_manifest(data: bytes, source: str) -> dict[str, Any]:
    try:
        manifest = json.loads(data)
    except ValueError as error:
        raise SnapshotError(f"{source} is not valid JSON: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise SnapshotError(f"{source} is not a localmesh export (no \"format\": \"{FORMAT}\")")
    version = manifest.get("version")
    if version != VERSION:
        raise SnapshotError(
            f"{source} is a localmesh export of format version {version!r}; this localmesh "
            f"reads version {VERSION} only (export it again with this version, or upgrade)"
        )
    _check_shape(manifest, source)
    return manifest


def _check_shape(manifest: dict[str, Any], source: str) -> None:
    def need(condition: bool, place: str, what: str) -> None:
        if not condition:
            raise SnapshotError(f"{source}: {place}: {what}")

    need(isinstance(manifest.get("keys"), list), "keys", "must be a list")
    for i, key in enumerate(manifest["keys"]):
        need(isinstance(key, dict) and all(isinstance(key.get(f), str) for f in
             ("key_id", "project_id", "secret")), f"keys[{i}]", "needs key_id, project_id, secret")
    need(isinstance(manifest.get("rooms"), list), "rooms", "must be a list")
    names = set()
    for i, room in enumerate(manifest["rooms"]):
        place = f"rooms[{i}]"
        need(isinstance(room, dict), place, "must be an object")
        name = room.get("name")
        try:
            check_room_name(name)
        except ValueError as error:
            raise SnapshotError(f"{source}: {place}.name: {error}") from None
        need(name not in names, f"{place}.name", f"room {name!r} appears twice")
        names.add(name)
        need(isinstance(room.get("queues"), list), f"{place}.queues", "must be a list")
        for j, queue in enumerate(room["queues"]):
            need(isinstance(queue, dict) and isinstance(queue.get("name"), str) and queue["name"]
                 and isinstance(queue.get("messages"), list),
                 f"{place}.queues[{j}]", "needs a name and a list of messages")
        need(isinstance(room.get("files"), list), f"{place}.files", "must be a list")
        for j, file in enumerate(room["files"]):
            need(isinstance(file, dict) and all(isinstance(file.get(f), str) for f in
                 ("path", "sha256", "mime_type", "created_at", "updated_at")),
                 f"{place}.files[{j}]", "needs path, sha256, mime_type, created_at, updated_at")
            try:
                canonical = normalize_path(file["path"])
            except InvalidPath as error:
                raise SnapshotError(f"{source}: {place}.files[{j}].path: {error}") from None
            need(canonical == file["path"] and canonical != "", f"{place}.files[{j}].path",
                 f"{file['path']!r} is not a canonical file path")


def _digests(manifest: dict[str, Any]) -> set[str]:
    return {file["sha256"] for room in manifest["rooms"] for file in room["files"]}


# ---------------------------------------------------------------- from and into a store


async def take_snapshot(store: Store, rooms: dict[str, str], keys: list[ApiKey]) -> Snapshot:
    """A snapshot of ``rooms`` (room name -> room key in ``store``) and the project's ``keys``."""
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "created_at": datetime.now(UTC).isoformat(),
        "keys": [{"key_id": k.key_id, "project_id": k.project_id, "secret": k.secret} for k in keys],
        "rooms": [],
    }
    blobs: dict[str, bytes] = {}
    for name, key in sorted(rooms.items()):
        queues = [
            {"name": queue, "messages": [json.loads(body) for body in await store.messages(key, queue)]}
            for queue in await store.queue_names(key)
        ]
        files = []
        for row in await store.files_under(key, ""):
            found = await store.read_file(key, row.path)
            if found is None:  # deleted meanwhile
                continue
            row, data = found
            digest = hashlib.sha256(data).hexdigest()
            blobs[digest] = data
            files.append({
                "path": row.path, "size": row.size, "sha256": digest, "mime_type": row.mime_type,
                "created_at": row.created_at, "updated_at": row.updated_at,
            })
        manifest["rooms"].append({"name": name, "queues": queues, "files": files})
    return Snapshot(manifest, blobs)


async def restore_rooms(store: Store, queues: Queues, snapshot: Snapshot, key_of: Any) -> list[str]:
    """Write the snapshot's rooms into ``store``, their queues through ``queues`` (which hands
    out message ids); ``key_of(name)`` gives each room's key.
    Refuses, before writing anything, if one of those rooms already holds queues or files."""
    keys = {room["name"]: key_of(room["name"]) for room in snapshot.rooms}
    existing = set(await store.room_keys())
    taken = sorted(name for name, key in keys.items() if key in existing)
    if taken:
        raise SnapshotError(
            f"cannot import into room(s) {', '.join(map(repr, taken))}: they already hold queues "
            "or files (import into a fresh server, or reset those rooms first)"
        )
    for room in snapshot.rooms:
        key = keys[room["name"]]
        for queue in room["queues"]:
            await queues.restore(key, queue["name"], [json.dumps(m) for m in queue["messages"]])
        for file in room["files"]:
            row = FileRow(file["path"], 0, file["mime_type"], file["created_at"], file["updated_at"])
            await store.import_file(key, row, snapshot.blobs[file["sha256"]])
    return sorted(keys.values())
