"""The Services view in a real Chromium: a local service run by ``localmesh serve``, its state,
its restarts and its output, live."""

from __future__ import annotations

import pytest
from studio_support import Served

pytestmark = pytest.mark.slow
expect = pytest.importorskip("playwright.sync_api", reason="pip install 'localmesh[test]'").expect

ROOM = "serviced"
# A service that says something and exits with 3: the supervisor starts it again and again.
TICKER = """\
kind: Service
version: v1
metadata:
  name: ticker
container:
  image: us-central1-docker.pkg.dev/meshagent-public/images/python-sdk:0.56.0-esgz
  command: >-
    python -c "print('tick from the service'); raise SystemExit(3)"
"""


def test_a_service_shows_its_state_restarts_and_output(studio, served: Served, screenshot) -> None:
    page = studio
    page.goto(f"{served.url}/studio/rooms/{ROOM}/services")
    expect(page.locator(".page")).to_contain_text("No services run in this room.")
    spec = served.data_dir.parent / "ticker.yaml"
    spec.write_text(TICKER)
    created = served.run("service", "create", "--file", str(spec), "--room", ROOM)
    assert created.returncode == 0, created.stdout + created.stderr

    ticker = page.locator("[data-service=ticker]")
    expect(ticker.locator(".log")).to_contain_text("tick from the service", timeout=30_000)
    expect(ticker.locator(".facts")).to_contain_text("last exit code 3", timeout=30_000)
    expect(ticker.locator(".facts")).not_to_contain_text(" 0 restarts", timeout=30_000)
    screenshot(page, "studio-services")
    page.locator("#tabs [data-tab=overview]").click()
    expect(page.locator(".card", has_text="Services")).to_contain_text("of 1 running")

    deleted = served.run("service", "delete", "ticker", "--room", ROOM)
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    page.locator("#tabs [data-tab=services]").click()
    expect(page.locator(".page")).to_contain_text("No services run in this room.")
