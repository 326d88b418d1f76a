"""The Studio's HTTP side: the page (one HTML shell for every view URL), its assets, the
login routes, the JSON API under ``/studio/api`` and the live stream.

Every route but the login ones needs a viewer (``auth.py``); writes are also checked against
cross-site requests. The routes only translate HTTP: what they show and change is ``data.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import data, live, services_view, timeline_view
from .auth import (
    LOOPBACK_NAMES,
    SESSION_LIFETIME,
    LoginBook,
    Refused,
    StudioAuth,
    Viewer,
    check_host,
    check_same_origin,
    cookie_name,
)
from .login_page import login_page

if TYPE_CHECKING:
    from ..state import EmulatorState

StateOf = Callable[[HTTPConnection], "EmulatorState"]

PREFIX = "/studio"
API = f"{PREFIX}/api"
STATIC_DIR = Path(__file__).parent / "static"
_CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml"}
PAGE_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class StudioHeaders:
    """Adds the Studio's security headers to every ``/studio`` response (pure ASGI, so the
    live stream passes through unbuffered)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                extra = {
                    b"x-content-type-options": b"nosniff", b"referrer-policy": b"same-origin",
                    b"x-frame-options": b"DENY", b"cache-control": b"no-store",
                    b"content-security-policy": PAGE_POLICY.encode(),
                }
                headers += [(name, value) for name, value in extra.items() if name not in names]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.headers.get('host', '')}"


def _safe_next(target: str | None) -> str:
    """Where to go after logging in: a Studio page of this server, never another site."""
    if not target or not target.startswith(PREFIX) or target.startswith("//") or "\\" in target:
        return PREFIX
    return target


def mount_studio(app: FastAPI, state_of: StateOf) -> None:
    """Serve the Studio from ``app``: routes, error handlers and headers. ``state_of(request)``
    is the state of the server the request reached."""
    book = LoginBook()

    def auth_of(state: EmulatorState) -> StudioAuth:
        return StudioAuth(lambda: state.main_keys, book)  # the main project's keys

    def cookie(state: EmulatorState) -> str:
        port = urlsplit(state.public_url).port if state.public_url else None
        return cookie_name(port)

    def guard_host(request: Request, state: EmulatorState) -> None:
        bound = urlsplit(state.public_url).hostname if state.public_url else "127.0.0.1"
        check_host(request.headers.get("host"), bound in LOOPBACK_NAMES)

    async def viewer(request: Request) -> Viewer:
        state = state_of(request)
        guard_host(request, state)
        auth = auth_of(state)
        found = auth.viewer(request.headers.get("authorization"), request.cookies.get(cookie(state)))
        auth.check_write(found, request.method, request.headers, _own_origin(request))
        request.state.viewer = found
        return found

    def with_session(response: Response, state: EmulatorState, value: str) -> Response:
        response.set_cookie(cookie(state), value, httponly=True, samesite="strict", path=PREFIX,
                            max_age=int(SESSION_LIFETIME.total_seconds()))
        return response

    # ------------------------------------------------------------ errors

    @app.exception_handler(Refused)
    async def refused(request: Request, error: Refused) -> Response:
        if request.url.path.startswith(API) or request.method != "GET":
            return JSONResponse({"error": error.message}, status_code=error.status,
                                headers={"x-localmesh-reason": error.message})
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        nonce, html = login_page(message=error.message if error.status == 403 else None, next_url=here)
        return HTMLResponse(html, status_code=error.status, headers=_login_headers(nonce))

    @app.exception_handler(data.StudioError)
    async def studio_error(request: Request, error: data.StudioError) -> Response:
        return JSONResponse({"error": error.message}, status_code=error.status)

    # ------------------------------------------------------------ logging in and out

    login = APIRouter()

    @login.get(f"{PREFIX}/login")
    async def login_form(request: Request, code: str | None = None, next: str | None = None) -> Response:
        state = state_of(request)
        guard_host(request, state)
        if code is not None:
            try:
                session = auth_of(state).redeem(code)
            except Refused as error:
                nonce, html = login_page(message=error.message, next_url=_safe_next(next))
                return HTMLResponse(html, status_code=error.status, headers=_login_headers(nonce))
            return with_session(RedirectResponse(_safe_next(next), status_code=303), state, session)
        nonce, html = login_page(next_url=_safe_next(next))
        return HTMLResponse(html, status_code=401, headers=_login_headers(nonce))

    @login.post(f"{PREFIX}/login")
    async def login_submit(request: Request) -> Response:
        state = state_of(request)
        guard_host(request, state)
        check_same_origin(request.headers, _own_origin(request))  # no logging in from elsewhere
        form = parse_qs((await request.body()).decode("utf-8", errors="replace"))
        key = (form.get("key") or [""])[0]
        target = _safe_next((form.get("next") or [None])[0])
        try:
            session = auth_of(state).log_in(key)
        except Refused as error:
            nonce, html = login_page(message=error.message, next_url=target)
            return HTMLResponse(html, status_code=error.status, headers=_login_headers(nonce))
        return with_session(RedirectResponse(target, status_code=303), state, session)

    app.include_router(login)

    # ------------------------------------------------------------ the rest needs a viewer

    router = APIRouter(dependencies=[Depends(viewer)])

    @router.post(f"{PREFIX}/logout")
    async def logout(request: Request) -> Response:
        state = state_of(request)
        value = request.cookies.get(cookie(state))
        if value:
            auth_of(state).log_out(value)
        response = Response(status_code=204)
        response.delete_cookie(cookie(state), path=PREFIX, httponly=True, samesite="strict")
        return response

    @router.get(f"{PREFIX}/static/{{name}}")
    async def static(name: str) -> Response:
        path = STATIC_DIR / name
        if "/" in name or name.startswith(".") or not path.is_file():
            return JSONResponse({"error": f"no Studio asset {name!r}"}, status_code=404)
        return FileResponse(path, media_type=_CONTENT_TYPES.get(path.suffix, "application/octet-stream"))

    @router.get(f"{API}/session")
    async def session(request: Request) -> dict[str, Any]:
        state, who = state_of(request), request.state.viewer
        return {"csrf": auth_of(state).csrf_token(who), "project_id": state.api_key.project_id,
                "server": state.public_url, "cookie": who.session is not None}

    @router.get(f"{API}/rooms")
    async def rooms(request: Request) -> dict[str, Any]:
        return {"rooms": await data.list_rooms(state_of(request))}

    @router.post(f"{API}/rooms")
    async def create_room(request: Request) -> JSONResponse:
        body = await _json_object(request)
        made = await data.create_room(state_of(request), str(body.get("name") or ""))
        return JSONResponse(made, status_code=201)

    @router.get(f"{API}/rooms/{{room}}")
    async def room(room: str, request: Request) -> dict[str, Any]:
        return await data.room_detail(state_of(request), room)

    @router.get(f"{API}/rooms/{{room}}/queues")
    async def queues(room: str, request: Request) -> dict[str, Any]:
        return {"queues": await data.queues(state_of(request), room)}

    @router.get(f"{API}/rooms/{{room}}/queues/{{queue:path}}")
    async def peek(
        room: str, queue: str, request: Request, offset: int = 0, limit: int = 100
    ) -> dict[str, Any]:
        return await data.peek_queue(state_of(request), room, queue, offset, limit)

    @router.post(f"{API}/rooms/{{room}}/queues/{{queue:path}}")
    async def send(room: str, queue: str, request: Request) -> dict[str, Any]:
        body = await _json_object(request)
        text = body.get("message")
        if not isinstance(text, str):
            raise data.StudioError(400, "send {\"message\": \"<the message as JSON text>\"}")
        return await data.send_to_queue(state_of(request), room, queue, text)

    @router.delete(f"{API}/rooms/{{room}}/queues/{{queue:path}}")
    async def drain_or_delete(room: str, queue: str, request: Request, only: str | None = None) -> Response:
        if only == "messages":
            await data.drain_queue(state_of(request), room, queue)
        elif only is None:
            await data.delete_queue(state_of(request), room, queue)
        else:
            raise data.StudioError(400, "only=messages drains the queue; without it the queue is deleted")
        return Response(status_code=204)

    @router.get(f"{API}/rooms/{{room}}/folders")
    @router.get(f"{API}/rooms/{{room}}/folders/{{path:path}}")
    async def folder(room: str, request: Request, path: str = "") -> dict[str, Any]:
        return await data.list_folder(state_of(request), room, path)

    @router.get(f"{API}/rooms/{{room}}/files/{{path:path}}")
    async def file(room: str, path: str, request: Request) -> dict[str, Any]:
        return await data.file_info(state_of(request), room, path)

    @router.put(f"{API}/rooms/{{room}}/files/{{path:path}}")
    async def upload(room: str, path: str, request: Request, overwrite: bool = False) -> JSONResponse:
        mime = request.headers.get("content-type", "").split(";")[0].strip()
        info = await data.upload_file(
            state_of(request), room, path, request.stream(), overwrite=overwrite,
            mime_type=None if mime in ("", "application/octet-stream") else mime,
        )
        return JSONResponse(info, status_code=201)

    @router.delete(f"{API}/rooms/{{room}}/files/{{path:path}}")
    async def delete(room: str, path: str, request: Request, recursive: bool = False) -> Response:
        await data.delete_file(state_of(request), room, path, recursive=recursive)
        return Response(status_code=204)

    @router.post(f"{API}/rooms/{{room}}/move")
    async def move(room: str, request: Request) -> Response:
        body = await _json_object(request)
        await data.move_file(state_of(request), room, str(body.get("source") or ""),
                             str(body.get("destination") or ""), overwrite=bool(body.get("overwrite")))
        return Response(status_code=204)

    @router.get(f"{API}/rooms/{{room}}/llm")
    async def llm(room: str, request: Request) -> dict[str, Any]:
        return data.conversations(state_of(request), room)

    @router.get(f"{API}/rooms/{{room}}/activity")
    async def activity(room: str, request: Request, kind: str | None = None, participant: str | None = None,
                       offset: int = 0, limit: int = 100, upto: int | None = None) -> dict[str, Any]:
        offset, limit = data.page_bounds(offset, limit)
        return timeline_view.activity(state_of(request), room, kind=kind, participant=participant,
                                      offset=offset, limit=limit, upto=upto)

    @router.get(f"{API}/rooms/{{room}}/services")
    async def services(room: str, request: Request) -> dict[str, Any]:
        return services_view.services(state_of(request), room)

    @router.get(f"{API}/faults")
    async def faults(request: Request, room: str | None = None) -> dict[str, Any]:
        return {"faults": data.faults(state_of(request), room)}

    @router.post(f"{API}/faults")
    async def arm_fault(request: Request, room: str | None = None) -> JSONResponse:
        armed = data.arm_fault(state_of(request), await _json_object(request), room or None)
        return JSONResponse(armed, status_code=201)

    @router.delete(f"{API}/faults")
    async def clear_faults(request: Request, room: str | None = None) -> Response:
        data.clear_faults(state_of(request), room)
        return Response(status_code=204)

    @router.get(f"{API}/live")
    async def live_stream(request: Request, room: str | None = None) -> StreamingResponse:
        state = state_of(request)
        return StreamingResponse(
            live.event_stream(state, room or None, state.stopping), media_type="text/event-stream",
            headers={"x-accel-buffering": "no"},
        )

    @router.get(f"{API}/{{rest:path}}")
    async def no_such_api(rest: str) -> Response:
        return JSONResponse({"error": f"no Studio API at /{rest}"}, status_code=404)

    @router.get(PREFIX)
    @router.get(f"{PREFIX}/{{view:path}}")
    async def page(view: str = "") -> Response:
        # One shell for every view URL: the page reads its URL and shows that view.
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.include_router(router)
    app.add_middleware(StudioHeaders)


def _login_headers(nonce: str) -> dict[str, str]:
    # The login page carries its own style (assets need a login), allowed by this nonce only.
    return {"content-security-policy": PAGE_POLICY.replace("style-src 'self'", f"style-src 'nonce-{nonce}'")}


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise data.StudioError(400, "the request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise data.StudioError(400, "the request body must be a JSON object")
    return body


