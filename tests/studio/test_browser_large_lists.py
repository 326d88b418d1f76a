"""Long lists stay light in a real Chromium: the page holds the few rows in view and reads
only the pages it shows, however long the queue or the timeline."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from studio_support import Served

pytestmark = pytest.mark.slow
expect = pytest.importorskip("playwright.sync_api", reason="pip install 'localmesh[test]'").expect

ROOM = "busy"
MAX_ROWS = 80  # rows in the page at once: a view's worth and a margin, never the whole list


def rows_in_page(page) -> int:
    return page.locator("[data-test=vlist] .vrow").count()


def test_a_queue_of_a_thousand_messages(studio, served: Served) -> None:
    page = studio
    headers = {"authorization": f"Bearer {served.api_key}"}
    with httpx.Client(base_url=f"{served.url}/studio/api/rooms/{ROOM}", headers=headers) as api:
        for n in range(1000):
            message = json.dumps({"n": n, "prompt": f"task number {n}"})
            api.post("/queues/backlog", json={"message": message}).raise_for_status()

    asked: list[dict[str, list[str]]] = []
    page.on(
        "request",
        lambda r: asked.append(parse_qs(urlsplit(r.url).query)) if "/queues/backlog" in r.url else None,
    )
    page.goto(f"{served.url}/studio/rooms/{ROOM}/queues/backlog")
    expect(page.locator("[data-test=queue-size]")).to_have_text("1000 messages")
    expect(page.locator(".row.message[data-position='0']")).to_contain_text('"prompt":"task number 0"')
    assert 10 < rows_in_page(page) <= MAX_ROWS

    # Jump to the end: the last message shows, and the page still holds only a screenful.
    page.locator("[data-test=vlist]").evaluate("list => { list.scrollTop = list.scrollHeight; }")
    expect(page.locator(".row.message[data-position='999']")).to_contain_text('"prompt":"task number 999"')
    expect(page.locator(".row.message[data-position='999'] .pos")).to_have_text("#1000")
    assert rows_in_page(page) <= MAX_ROWS
    assert page.locator(".row.message[data-position='0']").count() == 0

    # Only the pages in view were read, a hundred messages at a time.
    pages = [query for query in asked if "offset" in query]
    assert all(int(query["limit"][0]) <= 100 for query in pages)
    assert {int(query["offset"][0]) for query in pages} <= {0, 800, 900}
