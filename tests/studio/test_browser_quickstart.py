"""The Studio in a real headless Chromium, against a real ``localmesh serve``, after the
documented Worker quickstart ran with real processes (as ``scripts/quickstart.sh`` runs it).

Every test looks at what the page shows: the tree, the viewer, the queue's size, the LLM's
turns, the participants. The screenshots in the docs come from these tests.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import httpx
import pytest
from studio_support import Served, stop

from localmesh.scripted_llm import load_demo_script

pytestmark = pytest.mark.slow
expect = pytest.importorskip("playwright.sync_api", reason="pip install 'localmesh[test]'").expect

ROOM = "quickstart"
QUEUE = "tasks"
TASK = '{"prompt": "save a poem about ai to poem.txt"}'
POEM = load_demo_script().rules[0].answer.calls[0].arguments["text"]


@pytest.fixture(scope="module")
def quickstart(served: Served) -> Served:
    """The README's quickstart: a worker joins, a task is sent, the worker saves poem.txt."""
    worker = served.worker(ROOM, "poet", QUEUE, "--max-messages", "1")
    served.send_task(ROOM, QUEUE, TASK)
    assert worker.wait(timeout=60) == 0
    assert served.run("room", "storage", "cat", "--room", ROOM, "poem.txt").stdout.rstrip() == POEM
    return served


def png(width: int, height: int) -> bytes:
    """A tiny real PNG (grey pixels), made here so the test needs no image library."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def test_the_serve_banner_prints_the_studio_url(quickstart: Served) -> None:
    assert f"Studio: {quickstart.url}/studio" in quickstart.log.read_text()


def test_the_room_shows_the_poem_in_the_storage_tree_and_the_viewer(studio, quickstart, screenshot) -> None:
    page = studio
    rooms = page.locator("[data-test=rooms]")
    expect(rooms.locator(f"tr[data-room={ROOM}]")).to_contain_text("1 (271 B)")
    screenshot(page, "studio-rooms")
    rooms.get_by_role("link", name=ROOM, exact=True).click()
    expect(page).to_have_url(f"{quickstart.url}/studio/rooms/{ROOM}")
    page.locator("#tabs [data-tab=storage]").click()
    entry = page.locator("[data-test=tree] a[data-path='poem.txt']")
    expect(entry).to_be_visible()
    entry.click()
    expect(page).to_have_url(f"{quickstart.url}/studio/rooms/{ROOM}/storage/poem.txt")
    expect(page.locator("[data-test=file-text]")).to_have_text(POEM)
    expect(page.locator(".facts")).to_contain_text("text/plain")
    screenshot(page, "studio-storage")


def test_the_llm_view_shows_the_conversation_with_its_tool_call(studio, quickstart, screenshot) -> None:
    page = studio
    page.goto(f"{quickstart.url}/studio/rooms/{ROOM}/llm")
    conversation = page.locator(".conversation").first
    first, second = conversation.locator(".turn").nth(0), conversation.locator(".turn").nth(1)
    expect(first.locator(".bubble.user")).to_contain_text("save a poem about ai to poem.txt")
    expect(first.locator(".tools")).to_contain_text("write_file")
    expect(first.locator(".rule")).to_have_text("Rule save-poem")
    call = first.locator("[data-test=tool-call]")
    expect(call).to_contain_text("write_file")
    expect(call).to_contain_text('"path": "poem.txt"')
    expect(second.locator(".bubble.tool-result")).to_contain_text("saved")
    expect(second.locator(".rule")).to_have_text("Rule poem-saved")
    expect(second.locator(".bubble.assistant")).to_have_text("assistantI saved a poem about AI to poem.txt.")
    expect(conversation.locator(".turn.unmatched")).to_have_count(0)
    screenshot(page, "studio-llm")


def test_a_message_sent_from_the_page_waits_until_a_worker_takes_it(studio, quickstart, screenshot) -> None:
    page = studio
    page.goto(f"{quickstart.url}/studio/rooms/{ROOM}/queues/{QUEUE}")
    size = page.locator("[data-test=queue-size]")
    expect(size).to_have_text("0 messages")  # the quickstart's task was taken
    page.get_by_label("Message (JSON)").fill('{"prompt": "save a poem about the sea to poem.txt"}')
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("status")).to_have_text(f"Sent to {QUEUE}.")
    expect(size).to_have_text("1 message")
    expect(page.locator(".row.message")).to_contain_text('{"prompt":"save a poem about the sea to poem.txt"}')
    screenshot(page, "studio-queue")

    # Peeking took nothing: a worker started now still gets the message, and the page sees it go.
    worker = quickstart.worker(ROOM, "poet-2", QUEUE, "--max-messages", "1")
    expect(size).to_have_text("0 messages", timeout=30_000)
    expect(page.locator(".row.message")).to_have_count(0)
    assert worker.wait(timeout=30) == 0
    page.locator("#tabs [data-tab=llm]").click()
    expect(page.locator(".bubble.user").filter(has_text="poem about the sea")).to_have_count(1)


def test_a_message_that_is_not_json_gets_a_clear_error(studio, quickstart) -> None:
    page = studio
    page.goto(f"{quickstart.url}/studio/rooms/{ROOM}/queues/{QUEUE}")
    page.get_by_label("Message (JSON)").fill('{"prompt": nope}')
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".send .error")).to_have_text(
        "the message is not valid JSON: Expecting value (line 1, column 12)"
    )
    expect(page.locator("[data-test=queue-size]")).to_have_text("0 messages")


def test_a_participant_appears_and_leaves(studio, quickstart, screenshot) -> None:
    page = studio
    page.goto(f"{quickstart.url}/studio/rooms/{ROOM}")
    helper = page.locator("[data-participant=helper]")
    expect(page.locator("[data-test=participants]")).to_have_text("Nobody is in the room.")
    worker = quickstart.worker(ROOM, "helper", "standby")  # waits on a queue nobody sends to
    expect(helper).to_be_visible(timeout=30_000)
    expect(helper).to_contain_text("agent")
    screenshot(page, "studio-room")
    assert stop(worker) == 0
    expect(helper).to_have_count(0)
    expect(page.locator("[data-test=participants]")).to_have_text("Nobody is in the room.")


def test_upload_by_drop_and_by_picker_view_and_download(studio, quickstart, tmp_path: Path) -> None:
    page = studio
    page.goto(f"{quickstart.url}/studio/rooms/{ROOM}/storage")
    tree = page.locator("[data-test=tree]")
    expect(tree.locator("a[data-path='poem.txt']")).to_be_visible()

    # Drag and drop: a file dropped anywhere on the storage view goes to the folder on screen.
    dropped = page.evaluate_handle("""() => {
        const transfer = new DataTransfer();
        transfer.items.add(new File(["hello from the page\\n"], "dropped.txt", {type: "text/plain"}));
        return transfer;
    }""")
    page.dispatch_event(".page.storage", "drop", {"dataTransfer": dropped})
    expect(page.locator(".notices .ok")).to_have_text("Uploaded dropped.txt (20 B).")
    expect(tree.locator("a[data-path='dropped.txt']")).to_be_visible()

    # The file picker, with an image.
    image = tmp_path / "dot.png"
    image.write_bytes(png(3, 2))
    page.set_input_files(".page.storage input[type=file]", str(image))
    tree.locator("a[data-path='dot.png']").click()
    shown = page.locator("[data-test=viewer] img")
    expect(shown).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth === 3", arg=shown.element_handle())

    tree.locator("a[data-path='dropped.txt']").click()
    expect(page.locator("[data-test=file-text]")).to_have_text("hello from the page\n")
    with page.expect_download() as downloading:
        page.locator("[data-test=download]").click()
    download = downloading.value
    assert download.suggested_filename == "dropped.txt"
    assert Path(download.path()).read_bytes() == b"hello from the page\n"
    # It is really in the room: the CLI reads it back.
    cat = quickstart.run("room", "storage", "cat", "--room", ROOM, "dropped.txt")
    assert cat.stdout == "hello from the page\n"


def test_move_and_delete_a_file_with_confirmation(studio, quickstart) -> None:
    page = studio
    headers = {"authorization": f"Bearer {quickstart.api_key}"}
    httpx.put(
        f"{quickstart.url}/studio/api/rooms/{ROOM}/files/draft.md", content=b"# draft", headers=headers
    ).raise_for_status()
    page.goto(f"{quickstart.url}/studio/rooms/{ROOM}/storage/draft.md")
    page.get_by_role("button", name="Move / rename").click()
    page.get_by_label("New path").fill("notes/final.md")
    page.get_by_role("button", name="Move", exact=True).click()
    expect(page).to_have_url(f"{quickstart.url}/studio/rooms/{ROOM}/storage/notes/final.md")
    tree = page.locator("[data-test=tree]")
    expect(tree.locator("a[data-path='notes']")).to_be_visible()
    expect(tree.locator("a[data-path='notes/final.md']")).to_be_visible()
    expect(tree.locator("a[data-path='draft.md']")).to_have_count(0)

    page.get_by_role("button", name="Delete", exact=True).click()
    dialog = page.locator("dialog#confirm")
    expect(dialog).to_contain_text("Delete notes/final.md?")
    dialog.get_by_role("button", name="Cancel").click()
    expect(tree.locator("a[data-path='notes/final.md']")).to_be_visible()
    page.get_by_role("button", name="Delete", exact=True).click()
    dialog.get_by_role("button", name="Delete").click()
    expect(page).to_have_url(f"{quickstart.url}/studio/rooms/{ROOM}/storage/notes")
    expect(tree.locator("a[data-path='notes/final.md']")).to_have_count(0)
    listing = httpx.get(f"{quickstart.url}/studio/api/rooms/{ROOM}/folders", headers=headers).json()
    assert "notes" not in [entry["name"] for entry in listing["entries"]]


def test_a_large_file_shows_only_its_head(studio, quickstart) -> None:
    page = studio
    big = b"0123456789abcdef" * (3 * 1024 * 1024 // 16)  # 3 MB of text
    httpx.put(
        f"{quickstart.url}/studio/api/rooms/{ROOM}/files/big.log",
        content=big,
        headers={"authorization": f"Bearer {quickstart.api_key}"},
        timeout=30,
    ).raise_for_status()
    page.goto(f"{quickstart.url}/studio/rooms/{ROOM}/storage/big.log")
    expect(page.locator(".viewer .notice")).to_have_text(
        "Showing the first 256.0 KB of 3.0 MB. Download the file to see all of it."
    )
    shown = page.locator("[data-test=file-text]").evaluate("pre => pre.textContent.length")
    assert shown == 256 * 1024


def test_faults_armed_from_the_page_fire_and_clear(studio, quickstart, screenshot) -> None:
    page = studio
    page.goto(f"{quickstart.url}/studio/rooms/{ROOM}/faults")
    expect(page.locator(".page")).to_contain_text("No faults are armed.")
    form = page.locator("form.arm")
    form.get_by_label("Toolkit").fill("queues")
    form.get_by_label("Tool", exact=True).fill("send")
    form.get_by_label("Times").fill("2")
    form.get_by_label("Message").fill("the network is down")
    form.get_by_role("button", name="Arm").click()
    fault = page.locator("[data-test=faults] tr[data-fault='queues.send']")
    expect(fault).to_contain_text(f"{ROOM}")
    expect(fault.locator(".left")).to_have_text("2")
    expect(fault.locator(".fired")).to_have_text("0")

    # A real client's call fails on purpose, and the page counts it.
    failed = quickstart.run("room", "queue", "send", "--room", ROOM, "--queue", "faulty", "--json", "{}")
    assert failed.returncode != 0 and "the network is down" in failed.stdout + failed.stderr
    expect(fault.locator(".fired")).to_have_text("1")
    expect(fault.locator(".left")).to_have_text("1")
    screenshot(page, "studio-faults")

    page.get_by_role("button", name="Clear faults").click()
    page.locator("dialog#confirm").get_by_role("button", name="Clear").click()
    expect(page.locator(".page")).to_contain_text("No faults are armed.")
    assert (
        quickstart.run(
            "room", "queue", "send", "--room", ROOM, "--queue", "faulty", "--json", "{}"
        ).returncode
        == 0
    )


def test_a_request_no_rule_matched_is_shown_in_red(studio, quickstart) -> None:
    page = studio
    key = {"authorization": f"Bearer {quickstart.api_key}"}
    script = b"rules:\n  - name: only-hello\n    match: {user: hello}\n    answer: {text: hi}\n"
    httpx.put(
        f"{quickstart.url}/_localmesh/llm/rooms/strict/script", content=script, headers=key
    ).raise_for_status()
    answered = httpx.post(
        f"{quickstart.url}/openai/v1/responses",
        json={"model": "m", "input": "goodbye"},
        headers={**key, "x-localmesh-room": "strict"},
    )
    assert answered.status_code == 400
    page.goto(f"{quickstart.url}/studio/rooms/strict/llm")
    expect(page.locator(".facts")).to_contain_text("1 unmatched")
    turn = page.locator(".turn.unmatched")
    expect(turn.locator(".rule")).to_have_text("No rule matched")
    expect(turn.locator(".error")).to_contain_text("no script rule matched this request")
    expect(turn.locator(".error")).to_contain_text("'only-hello'")
    assert turn.evaluate("el => getComputedStyle(el).borderLeftColor") == "rgb(180, 35, 24)"  # --bad
