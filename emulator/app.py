"""The FastAPI app: the room websocket, health, download links and the CLI's HTTP calls.

The app is built once per process and shared by every server in it: building FastAPI
routes (and their first-request setup) cost more than the rest of a server's start. Each
server hands it its own state through the ASGI scope (``create_app(state)`` wraps it), and
the routes read it from there (``state_of``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from localmesh.emulator.admin import create_admin_router
from localmesh.emulator.blobs import BlobReader
from localmesh.emulator.errors import STORAGE_NOT_FOUND, RoomError
from localmesh.emulator.fault_admin import create_fault_router
from localmesh.emulator.files_api import create_files_router, files_base_url
from localmesh.emulator.llm.router import create_llm_router
from localmesh.emulator.paths import basename
from localmesh.emulator.services.api import ServicesAccess, create_services_router
from localmesh.emulator.session import Session
from localmesh.emulator.state import EmulatorState
from localmesh.emulator.storage import canonical_file
from localmesh.emulator.studio.routes import mount_studio
from localmesh.emulator.url_token import UrlTokenMiddleware, redact, url_token
from localmesh.emulator.websocket import LEAN_EXTENSION, LeanChannel
from localmesh.protocol.sdk_versions import ClientVersion
from localmesh.protocol.tokens import SDK_VERSION, AuthError, bearer_token, mint_token
from localmesh.protocol.wire import (
    LARGE_PACKET_SIZE,
    PACKET_SIZE_HEADER,
    agreed_packet_size,
    guess_mime_type,
)

logger = logging.getLogger("localmesh.app")


def _room_url(base_url: str, room: str) -> str:
    """The websocket URL of ``room`` on the server at ``base_url`` (http(s) or ws(s))."""
    return f"{base_url.rstrip('/').replace('http', 'ws', 1)}/rooms/{room}"


def _refusal(status: int, reason: str) -> Response:
    # The real SDK only shows the status; our own client and curl show the reason too.
    return JSONResponse({"error": reason}, status_code=status, headers={"x-localmesh-reason": reason})


STATE_KEY = "localmesh.state"


def state_of(connection: HTTPConnection) -> EmulatorState:
    """The state of the server that received this request."""
    return connection.scope[STATE_KEY]


def services_of(connection: HTTPConnection) -> ServicesAccess:
    state = state_of(connection)
    return ServicesAccess(
        state.services.registry, state.services.supervisor,
        project_id=lambda: state.api_key.project_id,
        # The services (and the Studio) belong to the main project: its keys only.
        is_api_key=lambda token: token is not None and state.is_main_api_key(token),
    )


class BoundApp:
    """The shared app, serving one server's state."""

    def __init__(self, app: ASGIApp, state: EmulatorState) -> None:
        self._app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[STATE_KEY] = self.state
        await self._app(scope, receive, send)

    def __getattr__(self, name: str) -> Any:
        # The routes, openapi() and the rest are the shared app's.
        return getattr(self._app, name)


def create_app(state: EmulatorState) -> BoundApp:
    return BoundApp(_shared_app(), state)


@functools.cache
def _shared_app() -> FastAPI:
    app = FastAPI(title="localmesh room emulator", docs_url=None, redoc_url=None)
    # Old SDK clients put their token in the URL: take it out before anything logs the URL.
    app.add_middleware(UrlTokenMiddleware)
    # The scripted LLM providers, at {MESHAGENT_API_URL}/openai/v1, /anthropic and /grok/v1 like the
    # real LLM proxy.
    app.include_router(create_llm_router(state_of))
    app.include_router(create_admin_router(state_of))
    app.include_router(create_services_router(services_of))
    # The Studio: the page at /studio and its JSON API, for the project's key holder only.
    mount_studio(app, state_of)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(create_files_router(state_of))
    app.include_router(create_fault_router(state_of))

    @app.get("/config")
    async def config(request: Request) -> dict[str, Any]:
        # The real CLI compares versions with it at start; its files client (`room storage`)
        # finds the files API here, and refuses a config without `domains`.
        base = (state_of(request).public_url or str(request.base_url)).rstrip("/")
        return {"version": SDK_VERSION, "domains": {"api": base, "files": files_base_url(base)},
                "reserved_route_domains": []}

    @app.websocket("/rooms/{room}")
    async def room_socket(websocket: WebSocket, room: str) -> None:
        state = state_of(websocket)
        # The header, or (SDK clients up to 0.42.x) the URL's token, which the middleware moved
        # out of the query string.
        token = bearer_token(websocket.headers.get("authorization")) or url_token(websocket.scope)
        max_token = state.settings.limits.max_token_bytes
        try:
            if token is None:
                raise AuthError("no 'Authorization: Bearer <participant token>' header")
            if len(token) > max_token:
                # A 403, not the parser's 431: the SDK retries anything but 403/404/423 for ever.
                raise AuthError(f"token of {len(token)} bytes is over the {max_token}-byte limit"
                                " (grant fewer queues or paths, or use null for 'all')")
            participant = state.participant(token, room)
        except AuthError as error:
            reason = redact(str(error), token)  # a refusal never echoes the token
            logger.warning("room %s: refused a connection: %s", room, reason)
            # 403 at upgrade: the SDK fails at once instead of retrying for ever.
            await websocket.send_denial_response(_refusal(403, reason))
            return
        key = state.room_key_of(participant)  # the room, in the project that signed the token
        websocket.scope["localmesh.room"] = key  # lets drop_connections find it
        refused = state.faults.refusal(key, participant.name)
        if refused is not None:
            status, reason = refused
            logger.info("room %s: refused %s on purpose: %s", room, participant.name, reason)
            await websocket.send_denial_response(_refusal(status, reason))
            return
        limits = state.settings.limits
        guard = state.connections
        if guard is not None:
            guard.limit_frames(websocket.scope, limits.max_frame_bytes)
        session = Session(
            lean_websocket(websocket), room=key, participant=participant, tools=state.tool, limits=limits,
            budget=state.budget, abort=None if guard is None else guard.abort_for(websocket.scope),
            on_close=state.rooms.leave, now=state.settings.clock.time,
            client=ClientVersion.parse(websocket.query_params.get("v")),
            frame_budget=state.faults.connection_budget(key, participant.name),
            hang_up=None if guard is None else guard.close_for(websocket.scope),
            # localmesh's own client takes big packets (and says so); the SDK gets 1024 bytes.
            # We announce the biggest packet we take ourselves (Limits.max_packet_bytes).
            packet_size=agreed_packet_size(websocket.headers.get(PACKET_SIZE_HEADER)),
            accept_headers=[(PACKET_SIZE_HEADER.encode(),
                             str(min(LARGE_PACKET_SIZE, limits.max_packet_bytes)).encode())],
            timeline=state.timeline, tools_now=state.tool_now,
            after_commit=state.store.after_commit, reads=state.store,
        )
        state.rooms.join(session)
        # Its own task: each frame wakes the session's read loop, which then resumes only its
        # own few frames, not the whole ASGI middleware chain above this handler.
        await asyncio.ensure_future(
            session.run(room_url=_room_url(state.public_url or str(websocket.base_url), room)))

    @app.post("/accounts/projects/{project_id}/rooms/{room}/connect")
    async def connect_room(project_id: str, room: str, request: Request) -> Response:
        state = state_of(request)
        # The real CLI asks for a room token here when --room differs from MESHAGENT_ROOM.
        token = bearer_token(request.headers.get("authorization"))
        if token is None:
            return _refusal(401, "a project API key or participant token is required")
        key = state.keyring.by_text(token)
        if key is not None:
            body = await _json_body(request)
            name = str(body.get("participant_name") or body.get("name") or "cli")
            jwt_text = mint_token(key, room=room, name=name, role="user")
            project = key.project_id
        elif token.startswith("ma-"):
            return _refusal(401, "this API key does not belong to the local project")
        else:
            # A participant token is scoped to its room: it may only reconnect there.
            try:
                participant = state.participant(token, room)
            except AuthError as error:
                return _refusal(403, f"this token cannot connect to room {room!r}: {error}")
            jwt_text = token
            project = state.keyring.by_id[participant.key_id].project_id
        return JSONResponse({
            "jwt": jwt_text, "room_name": room, "project_id": project,
            "room_url": _room_url(state.public_url, room),
        })

    @app.get("/_localmesh/download/{room}/{path:path}")
    async def download(room: str, path: str, request: Request, sig: str = "") -> Response:
        state = state_of(request)
        try:
            path = canonical_file(path)
            key = state.check_download(room, path, sig)
            row, reader = state.storage.open_file(key, path)
        except AuthError as error:
            return _refusal(403, str(error))
        except RoomError as error:
            return _refusal(404 if error.code == STORAGE_NOT_FOUND else 400, error.message)
        return StreamingResponse(
            _stream_and_close(reader),
            media_type=row.mime_type or guess_mime_type(basename(path)),
            headers={
                "content-disposition": _inline_disposition(basename(path)),
                "content-length": str(reader.size),
                # A room file is anyone's upload: opened in a browser, an HTML file must not run
                "content-security-policy": "sandbox", "x-content-type-options": "nosniff",
            },
        )

    return app


async def _stream_and_close(reader: BlobReader) -> AsyncIterator[bytes]:
    # Streamed block by block (the next one read while this one is sent): memory stays flat.
    try:
        async for block in reader.blocks():
            yield block
    finally:
        reader.close()


def lean_websocket(websocket: WebSocket) -> WebSocket:
    """The same websocket, calling uvicorn's protocol directly when it offers that (the
    middleware wrappers on every send cost more than the send itself)."""
    channel = websocket.scope.get("extensions", {}).get(LEAN_EXTENSION)
    if channel is None:
        return websocket
    return _LeanWebSocket(websocket.scope, channel)


class _LeanWebSocket(WebSocket):
    """Starlette's websocket on uvicorn's protocol directly, with what the protocol adds
    (``LeanChannel``): ``send_frames`` (the frames of one message or more in one write),
    ``write_frames`` (the same without waiting, when the socket takes them now), and
    ``set_sink``/``resume_sink`` (messages handed over as they are read)."""

    def __init__(self, scope: Any, channel: LeanChannel) -> None:
        super().__init__(scope, channel.receive, channel.send)
        self.send_frames = channel.send_frames
        self.write_frames = channel.write_frames
        self.set_sink = channel.set_sink
        self.resume_sink = channel.resume_sink


def _inline_disposition(name: str) -> str:
    # Headers are latin-1: an ASCII fallback name, and the real one in RFC 5987 form.
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name)
    return f"inline; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


async def _json_body(request: Request) -> dict:
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
