"""The files API (``domains.files`` in ``GET /config``): room storage over plain HTTP.

The real CLI's ``meshagent room storage ls|get|cp|rm|exists|presign`` use it instead of
the room websocket. Resource URL: ``{base}/{project}/rooms/{room}/{path}``:

    GET ?list=&prefix=P&limit=N[&continuation_token=T]   direct children of folder P
    GET ?permissions                                      actions allowed at the path
    GET                                                   download (streamed)
    HEAD                                                  stat, in headers; 404 = absent
    PUT ?overwrite=true|false                             upload (streamed body)
    DELETE ?recursive=true|false
    POST ?action=mkdir|copy|move                          JSON body for copy and move
    POST {base}/v1/presign                                a signed URL for one method

Same storage, grants, path rules and ``storage.file.*`` events as the websocket toolkit.
Credentials: ``Authorization: Bearer`` the project API key (every action) or a participant
token for that room (its ``api.storage`` grant), or a presigned URL's ``signature``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import jwt
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from ..protocol.tokens import AuthError, Participant, bearer_token
from ..protocol.wire import guess_mime_type
from .blobs import BlobReader
from .errors import (
    INVALID_REQUEST,
    OPERATION_FAILED,
    PERMISSION_DENIED,
    STORAGE_ALREADY_EXISTS,
    STORAGE_INVALID_PATH,
    STORAGE_NOT_FOUND,
    STORAGE_RECURSIVE_REQUIRED,
    RoomError,
)
from .namespaces import check_room_name, room_key
from .paths import basename
from .storage import canonical, canonical_file
from .storage_access import permissions, project_owner, require_presign, require_storage
from .store import FileRow

if TYPE_CHECKING:
    from collections.abc import Callable

    from starlette.requests import HTTPConnection

    from .state import EmulatorState

PREFIX = "/files"
DOWNLOAD_CHUNK = 256 * 1024
MAX_PAGE = 1000
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
METHOD_ACTIONS = {"GET": "read", "HEAD": "list", "PUT": "write", "DELETE": "delete"}
_STATUS = {
    OPERATION_FAILED: 500, STORAGE_NOT_FOUND: 404, PERMISSION_DENIED: 403, STORAGE_ALREADY_EXISTS: 409,
    STORAGE_INVALID_PATH: 400, STORAGE_RECURSIVE_REQUIRED: 400, INVALID_REQUEST: 400,
}


class FilesError(Exception):
    """An HTTP refusal: status, a message that says why, and the room error code if any."""

    def __init__(self, status: int, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code

    @classmethod
    def from_room_error(cls, error: RoomError) -> FilesError:
        return cls(_STATUS.get(error.code, 400), error.message, error.code)

    def response(self, method: str) -> Response:
        headers = {"x-localmesh-reason": self.message.encode("ascii", "replace").decode()}
        if method == "HEAD":  # no body may follow a HEAD answer
            return Response(status_code=self.status, headers=headers)
        body = {"error": self.message, "code": self.code}
        return JSONResponse(body, status_code=self.status, headers=headers)


def files_base_url(public_url: str) -> str:
    return f"{public_url.rstrip('/')}{PREFIX}"


def create_files_router(state_of: Callable[[HTTPConnection], EmulatorState]) -> APIRouter:
    """The files routes; ``state_of(request)`` is the state of the server that received it."""
    router = APIRouter(prefix=PREFIX)

    @router.post("/v1/presign")
    async def presign(request: Request) -> Response:
        api = FilesApi(state_of(request))
        return await api.guarded(request, api.presign(request))

    @router.api_route(
        "/{project_id}/{kind}/{name}/{path:path}",
        methods=["GET", "HEAD", "PUT", "DELETE", "POST"],
    )
    async def resource(request: Request, project_id: str, kind: str, name: str, path: str) -> Response:
        api = FilesApi(state_of(request))
        return await api.guarded(request, api.resource(request, project_id, kind, name, path))

    return router


class FilesApi:
    def __init__(self, state: EmulatorState) -> None:
        self._state = state
        self._storage = state.storage

    async def guarded(self, request: Request, work: Any) -> Response:
        try:
            return await work
        except FilesError as error:
            await _drain(request)  # a client still sending its body would see a reset otherwise
            return error.response(request.method)
        except RoomError as error:
            await _drain(request)
            return FilesError.from_room_error(error).response(request.method)

    # ------------------------------------------------------------ who is asking

    def _check_project(self, project_id: str) -> str:
        """The namespace of the project the URL names (a 404 for one this server lacks)."""
        namespace = self._state.keyring.project_namespace(project_id)
        if namespace is None:
            local = self._state.api_key.project_id
            raise FilesError(404, f"no project {project_id!r} here; the local project is {local!r}")
        return namespace

    def _room_key(self, namespace: str, room: str) -> str:
        try:
            return room_key(namespace, check_room_name(room))
        except ValueError as error:
            raise FilesError(400, str(error), INVALID_REQUEST) from None

    def _caller(self, request: Request, project_id: str, room: str, namespace: str) -> Participant:
        token = bearer_token(request.headers.get("authorization"))
        if token is None or token == "None":  # the SDK sends "Bearer None" with no key set
            raise FilesError(401, "send 'Authorization: Bearer <project API key or participant token>'")
        keyring = self._state.keyring
        key = keyring.by_text(token)
        if key is not None:
            if keyring.namespace(key.key_id) != namespace:
                raise FilesError(403, f"this API key belongs to another project than {project_id!r}")
            return project_owner(room, project_id)
        if token.startswith("ma-"):
            raise FilesError(401, "this API key does not belong to a project of this emulator")
        try:
            participant = self._state.participant(token, room)
        except AuthError as error:
            raise FilesError(403, f"token refused for room {room!r}: {error}") from None
        if keyring.namespace(participant.key_id) != namespace:
            raise FilesError(403, f"token belongs to another project than {project_id!r}")
        return participant

    def _signed_caller(self, signature: str, project_id: str, room: str, path: str,
                       method: str) -> Participant:
        try:
            claims = jwt.decode(signature, self._state.api_key.secret, algorithms=["HS256"])
        except jwt.PyJWTError as error:
            raise FilesError(403, f"presigned URL is not valid: {error}") from None
        granted = claims.get("files") or {}
        if granted != {"project": project_id, "room": room, "path": path, "method": method}:
            raise FilesError(403, "presigned URL was signed for another file or method")
        return project_owner(room, project_id)

    # ------------------------------------------------------------ the resource URL

    async def resource(
        self, request: Request, project_id: str, kind: str, name: str, raw_path: str
    ) -> Response:
        namespace = self._check_project(project_id)
        if kind == "agents":
            raise FilesError(501, "managed-agent files are not emulated by localmesh; use rooms")
        if kind != "rooms":
            raise FilesError(404, f"unknown files namespace {kind!r}; use rooms")
        query, method = request.query_params, request.method
        room = self._room_key(namespace, name)  # storage knows the room by its project's key
        signature = query.get("signature")
        if signature is not None:
            caller = self._signed_caller(signature, project_id, name, raw_path, method)
        else:
            caller = self._caller(request, project_id, name, namespace)
        if method == "GET" and "list" in query:
            return await self.list(caller, room, raw_path, query)
        if method == "GET" and "permissions" in query:
            return JSONResponse(permissions(caller, canonical(raw_path)))
        if method == "GET":
            return await self.download(caller, room, raw_path)
        if method == "HEAD":
            return await self.stat(caller, room, raw_path)
        if method == "PUT":
            return await self.upload(request, caller, room, raw_path)
        if method == "DELETE":
            return await self.delete(caller, room, raw_path, _flag(query, "recursive", False))
        return await self.action(request, caller, project_id, namespace, room, raw_path)

    async def list(self, caller: Participant, room: str, raw_path: str, query: Any) -> Response:
        folder = canonical("/".join(p for p in (raw_path, query.get("prefix") or "") if p))
        limit = _int(query.get("limit") or str(MAX_PAGE), "limit")
        if not 1 <= limit <= MAX_PAGE:
            raise FilesError(400, f"limit must be between 1 and {MAX_PAGE}, not {limit}")
        require_storage(caller, "list", folder)
        entries = sorted(await self._storage.list(room, folder), key=lambda e: e.name)
        after = _decode_page_token(query.get("continuation_token"))
        if after is not None:
            entries = [entry for entry in entries if entry.name > after]
        page, more = entries[:limit], len(entries) > limit
        return JSONResponse({
            "entries": [entry.to_json() for entry in page],
            "continuation_token": _page_token(page[-1].name) if more else None,
        })

    async def stat(self, caller: Participant, room: str, raw_path: str) -> Response:
        path = canonical(raw_path)
        require_storage(caller, "list", path)
        entry = await self._storage.stat(room, path)
        if entry is None:
            raise FilesError(404, f"{path!r} was not found", STORAGE_NOT_FOUND)
        if entry.is_folder:
            return Response(headers={"content-length": "0", "x-meshagent-is-folder": "true"})
        row = await self._storage.require_file(room, path)
        return Response(headers={**_file_headers(row), "x-meshagent-is-folder": "false"})

    async def download(self, caller: Participant, room: str, raw_path: str) -> Response:
        path = canonical_file(raw_path)
        require_storage(caller, "read", path)
        entry = await self._storage.stat(room, path)
        if entry is not None and entry.is_folder:
            raise FilesError(400, f"{path!r} is a folder: list it instead", STORAGE_INVALID_PATH)
        # The blob is opened now: the response streams that version, read block by block,
        # whatever happens to the path meanwhile.
        row, reader = self._storage.open_file(room, path)
        return StreamingResponse(_blocks(reader), headers=_file_headers(row))

    async def upload(self, request: Request, caller: Participant, room: str, raw_path: str) -> Response:
        path = canonical_file(raw_path)
        overwrite = _flag(request.query_params, "overwrite", True)
        require_storage(caller, "write", path)
        mime_type = _upload_mime_type(request.headers.get("content-type"), path)
        declared = request.headers.get("content-length")
        # Refused here, before the bytes, if the path or the declared size is wrong; then
        # written to the blob piece by piece as they arrive.
        upload = self._storage.begin_upload(
            room, path, mime_type, overwrite=overwrite,
            size=int(declared) if declared and declared.isdigit() else None)
        guard = self._state.faults.write_guard(room, caller.name, path)
        try:
            if guard is not None:
                guard.received(0)
            async for chunk in request.stream():
                if guard is None:
                    await upload.write(chunk)
                    continue
                await upload.write(guard.take(upload.received, chunk))
                guard.received(upload.received)
            if guard is not None:
                guard.complete(upload.received)
        except BaseException:
            upload.abort()
            raise
        size = upload.received
        await upload.commit()
        self._record(room, "storage.write", caller, path, size)
        await self._event(room, "storage.file.updated", {"path": path}, caller)
        return JSONResponse({"path": path, "size": size})

    async def delete(self, caller: Participant, room: str, raw_path: str, recursive: bool) -> Response:
        path = canonical(raw_path)
        require_storage(caller, "delete", path, subtree=recursive)
        await self._storage.delete(room, path, recursive=recursive)
        self._record(room, "storage.delete", caller, path)
        await self._event(room, "storage.file.deleted", {"path": path}, caller)
        return JSONResponse({})

    async def action(
        self, request: Request, caller: Participant, project_id: str, namespace: str, room: str,
        raw_path: str,
    ) -> Response:
        action = request.query_params.get("action")
        path = canonical(raw_path)
        if action == "mkdir":
            if not path:
                raise FilesError(400, "the room root already exists", STORAGE_INVALID_PATH)
            require_storage(caller, "write", path)
            await self._storage.make_folder(room, path)
            return JSONResponse({})
        if action not in ("copy", "move"):
            raise FilesError(400, f"unknown action {action!r}: use mkdir, copy or move")
        body = await _json_object(request)
        source_project, source_room, source = _source_location(body)
        overwrite = body.get("overwrite", False)
        if not isinstance(overwrite, bool):
            raise FilesError(400, f"overwrite must be true or false, not {overwrite!r}")
        if self._check_project(source_project) != namespace:
            raise FilesError(400, "localmesh copies and moves files within one project only")
        source_key = self._room_key(namespace, source_room)
        if action == "move":
            if source_key != room:
                raise FilesError(400, "localmesh moves files within one room only; copy, then delete")
            return await self._move(caller, room, source, path, overwrite)
        reader = caller if source_key == room else self._caller(
            request, project_id, source_room, namespace)
        return await self._copy(caller, reader, source_key, source, room, path, overwrite)

    async def _copy(self, caller: Participant, reader: Participant, source_room: str,
                    source: str, room: str, destination: str, overwrite: bool) -> Response:
        entry = await self._storage.stat(source_room, source)
        folder = entry is not None and entry.is_folder
        require_storage(reader, "read", source, subtree=folder)
        require_storage(caller, "write", destination, subtree=folder)
        written = await self._storage.copy(source_room, source, room, destination, overwrite=overwrite)
        for path in written:
            self._record(room, "storage.write", caller, path)
            await self._event(room, "storage.file.updated", {"path": path}, caller)
        return JSONResponse({"copied": written})

    async def _move(self, caller: Participant, room: str, source: str, destination: str,
                    overwrite: bool) -> Response:
        require_storage(caller, "delete", source, subtree=True)
        require_storage(caller, "write", destination, subtree=True)
        await self._storage.move(room, source, destination, overwrite=overwrite)
        self._record(room, "storage.move", caller, source, destination)
        await self._event(room, "storage.file.moved",
                          {"source_path": source, "destination_path": destination}, caller)
        return JSONResponse({})

    def _record(self, room: str, kind: str, caller: Participant, path: str, detail: Any = None) -> None:
        self._state.timeline.record(room, kind, f"files-api:{caller.name}", path, detail=detail)

    async def _event(self, room: str, type: str, header: dict[str, Any], caller: Participant) -> None:
        # No websocket session made this change: the writer is named after its credential.
        writer = f"files-api:{caller.name}"
        await self._state.rooms.broadcast(room, type, {**header, "participant_id": writer})

    # ------------------------------------------------------------ presigned URLs

    async def presign(self, request: Request) -> Response:
        body = await _json_object(request)
        target, path, method = body.get("target"), body.get("path", ""), body.get("method", "GET")
        expires_in = body.get("expires_in", 3600)
        if not isinstance(target, dict) or target.get("kind") not in ("room", "agent"):
            raise FilesError(400, "target must be {project_id, kind: room, name}")
        project_id, room = str(target.get("project_id")), str(target.get("name"))
        namespace = self._check_project(project_id)
        if target["kind"] == "agent":
            raise FilesError(501, "managed-agent files are not emulated by localmesh; use rooms")
        if method not in METHOD_ACTIONS:
            raise FilesError(400, f"method must be one of {', '.join(METHOD_ACTIONS)}, not {method!r}")
        if isinstance(expires_in, bool) or not isinstance(expires_in, int) or not (
            1 <= expires_in <= MAX_PRESIGN_SECONDS
        ):
            raise FilesError(400, f"expires_in must be 1 to {MAX_PRESIGN_SECONDS} seconds")
        path = canonical_file(path) if method in ("GET", "PUT") else canonical(path)
        self._room_key(namespace, room)
        caller = self._caller(request, project_id, room, namespace)
        require_presign(caller, path)
        require_storage(caller, METHOD_ACTIONS[method], path)
        expires_at = datetime.now(UTC) + timedelta(seconds=expires_in)
        claims = {"files": {"project": project_id, "room": room, "path": path, "method": method},
                  "exp": expires_at}
        signature = jwt.encode(claims, self._state.api_key.secret, algorithm="HS256")
        base = files_base_url(self._state.public_url or str(request.base_url))
        url = f"{base}/{quote(project_id, safe='')}/rooms/{quote(room, safe='')}/{quote(path)}"
        return JSONResponse({"url": f"{url}?signature={signature}", "method": method, "headers": {},
                             "expires_at": expires_at.isoformat()})


# ---------------------------------------------------------------- helpers


async def _drain(request: Request) -> None:
    try:
        async for _ in request.stream():
            pass
    except Exception:  # already read, or the client left: nothing more to drain
        return


async def _blocks(reader: BlobReader) -> AsyncIterator[bytes]:
    try:
        async for block in reader.blocks(block=DOWNLOAD_CHUNK):
            yield block
    finally:
        reader.close()


def _file_headers(row: FileRow) -> dict[str, str]:
    tag = hashlib.sha256(f"{row.path}\0{row.size}\0{row.updated_at}".encode()).hexdigest()[:32]
    headers = {"content-length": str(row.size), "content-type": row.mime_type, "etag": f'"{tag}"'}
    try:
        headers["last-modified"] = format_datetime(datetime.fromisoformat(row.updated_at), usegmt=True)
    except ValueError:
        pass
    return headers


def _upload_mime_type(content_type: str | None, path: str) -> str:
    kind = (content_type or "").split(";")[0].strip().lower()
    # curl's default and the SDK's fallback say nothing about the file: guess from its name.
    if not kind or kind in ("application/octet-stream", "application/x-www-form-urlencoded"):
        return guess_mime_type(basename(path))
    return kind


def _flag(query: Any, name: str, default: bool) -> bool:
    value = query.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise FilesError(400, f"{name} must be true or false, not {value!r}")


def _int(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise FilesError(400, f"{name} must be a whole number, not {text!r}") from None


def _page_token(after: str) -> str:
    return base64.urlsafe_b64encode(after.encode()).decode()


def _decode_page_token(token: str | None) -> str | None:
    if token is None:
        return None
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except ValueError:
        raise FilesError(400, "continuation_token is not one this server gave out") from None


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError as error:
        raise FilesError(400, f"the body is not JSON: {error}") from None
    if not isinstance(body, dict):
        raise FilesError(400, "the body must be a JSON object")
    return body


def _source_location(body: dict[str, Any]) -> tuple[str, str, str]:
    """``(project, room, path)`` of a copy or move ``source``: ``{"target": {...}, "path"}``."""
    source = body.get("source")
    target = source.get("target") if isinstance(source, dict) else None
    if not isinstance(target, dict) or not isinstance(source.get("path"), str):
        raise FilesError(400, "source must be {target: {project_id, kind, name}, path}")
    if target.get("kind") != "room":
        raise FilesError(501, "managed-agent files are not emulated by localmesh; use rooms")
    return str(target.get("project_id")), str(target.get("name")), canonical(source["path"])

