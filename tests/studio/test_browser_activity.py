"""The Activity view in a real headless Chromium, against a real ``localmesh serve``: the
quickstart's room shows its connection, calls and queue events, newest first; the kind filter;
live updates; and ten thousand events that page without locking the page up."""

from __future__ import annotations

import asyncio
import re
import threading
from urllib.parse import parse_qs, urlsplit

import pytest
from studio_support import Served

from localmesh.protocol.tokens import ApiKey, mint_token
from localmesh.worker import RoomClient

pytestmark = pytest.mark.slow
expect = pytest.importorskip("playwright.sync_api", reason="pip install 'localmesh[test]'").expect

SERVE_OPTIONS = ("--timeline-size", "20000")  # the busy room keeps all its ten thousand events
ROOM = "quickstart"
QUEUE = "tasks"
TASK = '{"prompt": "save a poem about ai to poem.txt"}'
BUSY = "busy"
SENDS = 5000  # each send is a call and a queue.send: with the connection, 10,002 events
MAX_ROWS = 80  # rows in the page at once: a view's worth and a margin, never the whole list
LONG_TASK = 1000.0  # ms: a task this long means the page locked up (a browser frame is 16 ms)

# Collects the page's long tasks (the main thread busy for 50 ms or more), from its first script.
WATCH_LONG_TASKS = """
window.longTasks = [];
new PerformanceObserver((found) => {
  for (const entry of found.getEntries()) window.longTasks.push(entry.duration);
}).observe({ type: "longtask", buffered: true });
"""


@pytest.fixture(scope="module")
def quickstart(served: Served) -> Served:
    """The README's quickstart: a worker joins, a task is sent, the worker saves poem.txt."""
    worker = served.worker(ROOM, "poet", QUEUE, "--max-messages", "1")
    served.send_task(ROOM, QUEUE, TASK)
    assert worker.wait(timeout=60) == 0
    return served


def rows(page):
    return page.locator("[data-test=vlist] .row.event")


def seqs(page) -> list[int]:
    return [int(seq) for seq in rows(page).evaluate_all("rows => rows.map(row => row.dataset.seq)")]


def test_the_room_shows_connections_calls_and_queue_events_newest_first(
    studio, quickstart: Served, screenshot
) -> None:
    page = studio
    page.goto(f"{quickstart.url}/studio/rooms/{ROOM}")
    page.locator("#tabs [data-tab=activity]").click()
    expect(page).to_have_url(f"{quickstart.url}/studio/rooms/{ROOM}/activity")
    poet = rows(page).filter(has=page.locator(".who", has_text=re.compile("^poet$")))
    expect(poet.and_(page.locator("[data-kind=connect]"))).to_have_count(1)
    expect(poet.and_(page.locator("[data-kind=disconnect]"))).to_have_count(1)
    expect(poet.and_(page.locator("[data-kind='queue.deliver']"))).to_contain_text(f"{QUEUE} #")
    expect(rows(page).and_(page.locator("[data-kind='queue.send']"))).to_contain_text(f"{QUEUE} #")
    upload = poet.and_(page.locator("[data-kind=call]")).filter(has_text="storage.upload")
    expect(upload).to_contain_text("path='poem.txt'")
    expect(upload).to_contain_text("-> ok")
    llm = rows(page).and_(page.locator("[data-kind=llm]"))
    expect(llm.first).to_contain_text("rule poem-saved")  # the LLM's last answer is newer
    expect(llm.last).to_contain_text("rule save-poem")
    shown = seqs(page)
    assert shown == sorted(shown, reverse=True) and len(shown) > 5  # newest first
    expect(page.locator("[data-test=activity-count]")).to_contain_text(f"{len(shown)} events, newest first")
    screenshot(page, "studio-activity")

    # The kind filter: the queue family is the send and the delivery, and the URL says so.
    page.locator("select[name=kind]").select_option("queue")
    expect(page).to_have_url(f"{quickstart.url}/studio/rooms/{ROOM}/activity?kind=queue")
    expect(page.locator("[data-test=activity-count]")).to_contain_text("2 events match")
    expect(rows(page)).to_have_count(2)
    kinds = rows(page).evaluate_all("rows => rows.map(row => row.dataset.kind)")
    assert kinds == ["queue.deliver", "queue.send"]
    page.locator("select[name=participant]").select_option("poet")
    expect(page).to_have_url(f"{quickstart.url}/studio/rooms/{ROOM}/activity?kind=queue&participant=poet")
    expect(rows(page)).to_have_count(1)
    expect(rows(page)).to_have_attribute("data-kind", "queue.deliver")
    page.get_by_role("link", name="Show all").click()
    expect(page.locator("[data-test=activity-count]")).to_contain_text(f"{len(shown)} events, newest first")


def test_new_events_appear_without_reloading(studio, quickstart) -> None:
    page = studio
    page.goto(f"{quickstart.url}/studio/rooms/{ROOM}/activity")
    expect(page.locator("#live")).to_have_text("live")
    newest = seqs(page)[0]
    page.evaluate("window.stillThisPage = true")
    quickstart.send_task(ROOM, "inbox", '{"from": "the live test"}')
    sent = rows(page).and_(page.locator("[data-kind='queue.send']")).filter(has_text="inbox #")
    expect(sent).to_have_count(1)
    expect(rows(page).first).to_have_attribute("data-kind", "disconnect")  # the sender left last
    assert seqs(page)[0] > newest
    assert page.evaluate("window.stillThisPage") is True


def flood(served: Served, room: str, sends: int) -> None:
    """``sends`` queue sends from one real client, a hundred in flight at a time."""
    token = mint_token(ApiKey.parse(served.api_key), room=room, name="flood")

    async def run() -> None:
        async with RoomClient(served.url, room, token) as client:
            for start in range(0, sends, 100):
                await asyncio.gather(*(client.queues.send("backlog", {"n": n})
                                       for n in range(start, min(start + 100, sends))))

    asyncio.run(run())


def test_ten_thousand_events_page_without_locking_up(studio, served: Served) -> None:
    page = studio
    asked: list[dict[str, list[str]]] = []
    page.on("request",
            lambda r: asked.append(parse_qs(urlsplit(r.url).query)) if "/activity?" in r.url else None)
    page.add_init_script(WATCH_LONG_TASKS)
    page.goto(f"{served.url}/studio/rooms/{BUSY}/activity")
    expect(page.locator(".vlist-empty")).to_have_text("Nothing has happened in this room yet.")

    # The events arrive while the page shows the room, live: it keeps up and stays light.
    failures: list[BaseException] = []
    sender = threading.Thread(target=lambda: _catching(failures, flood, served, BUSY, SENDS))
    sender.start()
    count = page.locator("[data-test=activity-count]")
    expect(count).to_contain_text("10,002 events, newest first", timeout=120_000)
    sender.join(timeout=60)
    assert not failures, failures
    expect(rows(page).first).to_have_attribute("data-kind", "disconnect")
    assert 10 < rows(page).count() <= MAX_ROWS

    # The oldest event is at the end of the list; the page still holds a screenful.
    page.locator("[data-test=vlist]").evaluate("list => { list.scrollTop = list.scrollHeight; }")
    expect(rows(page).last).to_have_attribute("data-kind", "connect")
    expect(rows(page).last).to_contain_text("flood")
    assert rows(page).count() <= MAX_ROWS

    # Scrolled down, new events do not move the rows: a button offers them instead.
    oldest_rows = seqs(page)
    served.send_task(BUSY, "backlog", '{"n": "one more"}')
    newer = page.locator("[data-test=activity-newer]")
    expect(newer).to_be_visible()
    expect(newer).to_contain_text(re.compile(r"↑ \d+ newer events"))
    assert seqs(page) == oldest_rows
    newer.click()
    expect(rows(page).first).to_have_attribute("data-kind", "disconnect")
    expect(newer).to_be_hidden()
    assert seqs(page)[0] > max(oldest_rows)

    # Only pages of at most 200 events were read, and the page never locked up.
    assert asked and all(int(query["limit"][0]) <= 200 for query in asked)
    long_tasks = page.evaluate("window.longTasks")
    assert max(long_tasks, default=0) < LONG_TASK, long_tasks
    # The watch works: a task made long on purpose is seen.
    page.evaluate("""() => new Promise((done) => setTimeout(() => {
      const end = performance.now() + 200;
      while (performance.now() < end) {}
      done();
    }))""")
    page.wait_for_function("seen => window.longTasks.length > seen", arg=len(long_tasks))


def _catching(failures: list[BaseException], run, *args) -> None:
    try:
        run(*args)
    except BaseException as error:  # noqa: BLE001 - handed to the test's thread to fail it
        failures.append(error)
