"""Who may use the Studio: nobody without the project's key; never a participant token; no
write from another site. Every route of the Studio is tried, as the server lists them."""

from __future__ import annotations

import re
import warnings
from collections.abc import AsyncIterator
from datetime import timedelta
from urllib.parse import quote

import httpx
import pytest_asyncio

from localmesh.emulator import RoomServer
from localmesh.emulator.app import create_app
from localmesh.emulator.studio import login_link, mint_login_code
from localmesh.protocol.tokens import ApiKey


def _openapi(server: RoomServer) -> dict:
    """The server's route listing (OpenAPI), from a second app on the same state."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # other routers' duplicate operation ids
        return create_app(server.state).openapi()


SAMPLES = {
    "room": "r",
    "queue": "tasks",
    "path": "notes/a.txt",
    "name": "app.js",
    "view": "rooms/r",
    "rest": "nothing",
}


def studio_routes(server: RoomServer) -> list[tuple[str, str]]:
    """Every (method, URL) the Studio serves, read from the app's own route listing."""
    found = []
    for path, operations in _openapi(server)["paths"].items():
        if not path.startswith("/studio") or path == "/studio/login":
            continue
        url = re.sub(r"\{(\w+)\}", lambda m: SAMPLES[m.group(1)], path)
        found += [(method.upper(), url) for method in sorted(operations)]
    return found


@pytest_asyncio.fixture
async def client(localmesh_server: RoomServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=localmesh_server.url) as client:
        yield client


async def logged_in(client: httpx.AsyncClient, server: RoomServer) -> str:
    """Log ``client`` in with the API key (the form); returns the session's CSRF token."""
    response = await client.post("/studio/login", data={"key": server.api_key})
    assert response.status_code == 303
    return (await client.get("/studio/api/session")).json()["csrf"]


def test_the_route_list_covers_the_studio(localmesh_server: RoomServer) -> None:
    routes = studio_routes(localmesh_server)
    for expected in [
        ("GET", "/studio"),
        ("GET", "/studio/static/app.js"),
        ("GET", "/studio/api/live"),
        ("POST", "/studio/api/rooms/r/queues/tasks"),
        ("PUT", "/studio/api/rooms/r/files/notes/a.txt"),
        ("DELETE", "/studio/api/faults"),
        ("POST", "/studio/logout"),
    ]:
        assert expected in routes
    assert len(routes) >= 25


async def test_without_credentials_every_studio_route_answers_401(client, localmesh_server) -> None:
    for method, url in studio_routes(localmesh_server):
        response = await client.request(method, url)
        assert response.status_code == 401, (method, url, response.text)
        if method == "GET" and not url.startswith("/studio/api"):
            assert 'name="key"' in response.text  # the login form, to get in
        else:
            assert "log in" in response.json()["error"]
    # The login page itself says 401 too: there is no session yet.
    assert (await client.get("/studio/login")).status_code == 401


async def test_a_participant_token_gets_403_everywhere(client, localmesh_server) -> None:
    token = localmesh_server.mint_token(room="r", name="alice")
    bearer = {"authorization": f"Bearer {token}"}
    for method, url in studio_routes(localmesh_server):
        response = await client.request(method, url, headers=bearer)
        assert response.status_code == 403, (method, url, response.text)
    assert "participant token" in (await client.get("/studio/api/rooms", headers=bearer)).json()["error"]
    # Nor as a cookie, a typed key or a login link.
    client.cookies.set(f"localmesh_studio_{localmesh_server.port}", token, path="/studio")
    assert (await client.get("/studio/api/rooms")).status_code == 403
    client.cookies.clear()
    form = await client.post("/studio/login", data={"key": token})
    assert form.status_code == 403 and "participant token" in form.text
    assert "set-cookie" not in form.headers
    link = await client.get(f"/studio/login?code={quote(token)}")
    assert link.status_code == 403 and "set-cookie" not in link.headers


async def test_the_api_key_as_a_bearer_opens_the_api(client, localmesh_server) -> None:
    response = await client.get(
        "/studio/api/rooms", headers={"authorization": f"Bearer {localmesh_server.api_key}"}
    )
    assert response.status_code == 200
    assert response.json() == {"rooms": []}
    wrong = ApiKey.generate().text
    refused = await client.get("/studio/api/rooms", headers={"authorization": f"Bearer {wrong}"})
    assert refused.status_code == 401


async def test_the_login_form_sets_an_httponly_samesite_strict_cookie(client, localmesh_server) -> None:
    response = await client.post(
        "/studio/login", data={"key": localmesh_server.api_key, "next": "/studio/rooms/r/storage/a.txt"}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/studio/rooms/r/storage/a.txt"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"localmesh_studio_{localmesh_server.port}=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/studio" in cookie
    assert (await client.get("/studio/api/rooms")).status_code == 200
    page = await client.get("/studio/rooms/r")
    assert page.status_code == 200 and '<script type="module" src="/studio/static/app.js">' in page.text


async def test_a_wrong_key_is_refused_with_a_reason(client, localmesh_server) -> None:
    response = await client.post("/studio/login", data={"key": "ma-not-it"})
    assert response.status_code == 401
    assert "that is not this server&#x27;s API key" in response.text
    assert "set-cookie" not in response.headers


async def test_after_login_next_never_leaves_the_studio(client, localmesh_server) -> None:
    for target in ("//evil.example/studio", "https://evil.example", "/elsewhere", "/studio\\evil"):
        response = await client.post("/studio/login", data={"key": localmesh_server.api_key, "next": target})
        assert response.headers["location"] == "/studio", target


async def test_a_login_link_works_once(client, localmesh_server) -> None:
    link = login_link(localmesh_server.url, localmesh_server.state.api_key)
    first = await client.get(link)
    assert first.status_code == 303 and first.headers["location"] == "/studio"
    assert "HttpOnly" in first.headers["set-cookie"]
    assert (await client.get("/studio/api/rooms")).status_code == 200
    client.cookies.clear()
    again = await client.get(link)
    assert again.status_code == 401 and "used already" in again.text
    assert (await client.get("/studio/api/rooms")).status_code == 401


async def test_an_expired_or_foreign_login_link_is_refused(client, localmesh_server) -> None:
    expired = mint_login_code(localmesh_server.state.api_key, lifetime=timedelta(seconds=-1))
    response = await client.get(f"/studio/login?code={quote(expired)}")
    assert response.status_code == 401 and "expired" in response.text
    foreign = mint_login_code(ApiKey.generate())
    response = await client.get(f"/studio/login?code={quote(foreign)}")
    assert response.status_code == 401 and "another data dir" in response.text


async def test_cookie_writes_need_the_csrf_token(client, localmesh_server) -> None:
    csrf = await logged_in(client, localmesh_server)
    missing = await client.post("/studio/api/rooms", json={"name": "a"})
    assert missing.status_code == 403 and "x-localmesh-csrf" in missing.json()["error"]
    wrong = await client.post("/studio/api/rooms", json={"name": "a"}, headers={"x-localmesh-csrf": "0" * 64})
    assert wrong.status_code == 403
    made = await client.post("/studio/api/rooms", json={"name": "a"}, headers={"x-localmesh-csrf": csrf})
    assert made.status_code == 201
    # Reads need no token.
    assert (await client.get("/studio/api/rooms")).json()["rooms"][0]["name"] == "a"


async def test_a_cross_site_write_is_refused(client, localmesh_server) -> None:
    csrf = await logged_in(client, localmesh_server)
    token = {"x-localmesh-csrf": csrf}
    cases = [
        {"origin": "https://evil.example"},
        {"origin": f"http://localhost:{localmesh_server.port + 1}"},
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},  # another port of 127.0.0.1 is the same site, not the same origin
    ]
    for headers in cases:
        response = await client.post("/studio/api/rooms", json={"name": "evil"}, headers={**token, **headers})
        assert response.status_code == 403, headers
        assert "may not change anything here" in response.json()["error"]
    # Even with the API key itself: a browser on another site must not write.
    bearer = {"authorization": f"Bearer {localmesh_server.api_key}", "origin": "https://evil.example"}
    assert (await client.post("/studio/api/rooms", json={"name": "evil"}, headers=bearer)).status_code == 403
    # A form posted from elsewhere cannot log anyone in either.
    login = await client.post(
        "/studio/login", data={"key": localmesh_server.api_key}, headers={"origin": "https://evil.example"}
    )
    assert login.status_code == 403
    same = await client.post(
        "/studio/api/rooms",
        json={"name": "fine"},
        headers={**token, "origin": localmesh_server.url, "sec-fetch-site": "same-origin"},
    )
    assert same.status_code == 201
    names = [room["name"] for room in (await client.get("/studio/api/rooms")).json()["rooms"]]
    assert names == ["fine"]


async def test_only_loopback_host_names_reach_a_loopback_studio(client, localmesh_server) -> None:
    # A page on evil.example whose DNS points at 127.0.0.1 sends Host: evil.example.
    key = {"authorization": f"Bearer {localmesh_server.api_key}"}
    response = await client.get("/studio/api/rooms", headers={**key, "host": "evil.example"})
    assert response.status_code == 403
    for host in (f"localhost:{localmesh_server.port}", f"127.0.0.1:{localmesh_server.port}"):
        assert (await client.get("/studio/api/rooms", headers={**key, "host": host})).status_code == 200


async def test_logging_out_ends_the_session(client, localmesh_server) -> None:
    csrf = await logged_in(client, localmesh_server)
    kept = dict(client.cookies)
    response = await client.post("/studio/logout", headers={"x-localmesh-csrf": csrf})
    assert response.status_code == 204
    assert (await client.get("/studio/api/rooms")).status_code == 401
    # The old cookie, replayed, is refused too.
    for name, value in kept.items():
        client.cookies.set(name, value, path="/studio")
    assert (await client.get("/studio/api/rooms")).status_code == 401


async def test_studio_pages_forbid_framing_and_scripts_from_elsewhere(client, localmesh_server) -> None:
    await logged_in(client, localmesh_server)
    page = await client.get("/studio")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "same-origin"  # a login code in a URL never leaves the server


async def test_room_files_are_served_sandboxed(client, localmesh_server) -> None:
    # A participant may upload HTML; opened from its download link it must not run as the Studio.
    await localmesh_server.state.storage.write(
        "r", "page.html", b"<script>1</script>", "text/html", overwrite=False
    )
    signature = localmesh_server.state.sign_download("r", "page.html")
    response = await client.get(f"/_localmesh/download/r/page.html?sig={signature}")
    assert response.status_code == 200
    assert response.headers["content-security-policy"] == "sandbox"
