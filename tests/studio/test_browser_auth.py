"""Getting into the Studio in a real Chromium: the login form, a participant token turned
away, and a page on another site that tries to change the room."""

from __future__ import annotations

import httpx
import pytest
from studio_support import Served

pytestmark = pytest.mark.slow
expect = pytest.importorskip("playwright.sync_api", reason="pip install 'localmesh[test]'").expect

ROOM = "guarded"


@pytest.fixture
def anonymous(browser, served: Served):
    context = browser.new_context(viewport={"width": 1100, "height": 720})
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def rooms(served: Served) -> list[str]:
    response = httpx.get(
        f"{served.url}/studio/api/rooms", headers={"authorization": f"Bearer {served.api_key}"}
    )
    return [room["name"] for room in response.json()["rooms"]]


def test_without_a_session_a_view_is_a_login_form_that_leads_back_to_it(
    anonymous, served, screenshot
) -> None:
    page = anonymous
    served.send_task(ROOM, "tasks", '{"n": 1}')
    response = page.goto(f"{served.url}/studio/rooms/{ROOM}/queues/tasks")
    assert response.status == 401
    expect(page.get_by_label("Project API key")).to_be_visible()
    screenshot(page, "studio-login")
    page.get_by_label("Project API key").fill(served.api_key)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{served.url}/studio/rooms/{ROOM}/queues/tasks")
    expect(page.locator("[data-test=queue-size]")).to_have_text("1 message")


def test_a_participant_token_is_turned_away(anonymous, served) -> None:
    token = served.run("token", "--room", ROOM, "--name", "intruder", "--data-dir", str(served.data_dir))
    assert token.returncode == 0, token.stderr
    page = anonymous
    page.goto(f"{served.url}/studio")
    page.get_by_label("Project API key").fill(token.stdout.strip())
    with page.expect_response(f"{served.url}/studio/login") as answer:
        page.get_by_role("button", name="Log in").click()
    assert answer.value.status == 403
    expect(page.get_by_role("alert")).to_have_text(
        "a participant token cannot open the Studio; use the project's API key"
    )
    assert page.context.cookies() == []


@pytest.mark.parametrize("site", ["http://attacker.test", "http://127.0.0.1:{other_port}"])
def test_a_page_on_another_site_cannot_change_the_room(studio, served, site: str) -> None:
    # The browser is logged in to the Studio. A page elsewhere (another site, or another port of
    # 127.0.0.1: the same site, so the SameSite cookie goes along) posts a form and a fetch.
    page = studio
    origin = site.format(other_port=served.port + 1)
    api = f"{served.url}/studio/api/rooms"
    attack = f"""<!doctype html><body>
      <form id="f" method="post" action="{api}" enctype="text/plain">
        <input name='{{"name": "evil-form", "x": "' value='"}}'>
      </form>
      <script>
        fetch("{api}", {{method: "POST", credentials: "include", mode: "no-cors",
                        headers: {{"Content-Type": "text/plain"}}, body: '{{"name": "evil-fetch"}}'}})
          .catch(() => null).finally(() => document.getElementById("f").submit());
      </script></body>"""
    page.route(f"{origin}/**", lambda route: route.fulfill(body=attack, content_type="text/html"))
    with page.expect_response(
        lambda r: r.url == api and r.request.method == "POST" and r.request.resource_type == "document"
    ) as answer:
        page.goto(f"{origin}/prize.html")
    assert answer.value.status in (401, 403)
    assert "evil-form" not in rooms(served) and "evil-fetch" not in rooms(served)
