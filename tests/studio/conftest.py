"""What the Studio tests share: a real ``localmesh serve`` process, the commands of the Worker
quickstart as real processes, and a real headless Chromium driven by Playwright.

The browser is the system's (Debian's ``chromium`` package; ``scripts/system-deps.sh``
installs it): ``LOCALMESH_CHROMIUM`` names it, else it is looked up on ``PATH``. Playwright
never downloads one. Screenshots go to ``docs/images/`` when ``LOCALMESH_UPDATE_SCREENSHOTS``
is set, else next to the test's temporary files (so a run does not change the repository).
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from studio_support import LOCALMESH, Served, find_chromium, free_port, stop, until

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "docs" / "images"
STARTUP = 30.0  # seconds `localmesh serve` may take to answer /healthz
# The MeshAgent variables of the developer's shell must not point the commands elsewhere.
FOREIGN_ENV = ("MESHAGENT_API_URL", "MESHAGENT_ROOM_URL", "MESHAGENT_API_KEY", "MESHAGENT_TOKEN",
               "MESHAGENT_ROOM", "MESHAGENT_PROJECT_ID", "OPENAI_BASE_URL", "OPENAI_API_KEY")


@pytest.fixture(scope="module")
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A real ``localmesh serve`` on a free port, with its own data dir, for a test module
    (with the module's ``SERVE_OPTIONS``, if it has some: ``("--timeline-size", "20000")``)."""
    options = list(getattr(request.module, "SERVE_OPTIONS", ()))
    home = tmp_path_factory.mktemp("serve")
    data_dir = home / "data"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN_ENV} | {"HOME": str(home)}
    log = home / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen([LOCALMESH, "serve", "--port", str(port), "--data-dir", str(data_dir),
                                    *options],
                                   env=env, stdout=out, stderr=subprocess.STDOUT, cwd=home)
    served = Served(process, port, data_dir, log)

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"localmesh serve exited: {log.read_text()}")
        try:
            return httpx.get(f"{served.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        until(ready, STARTUP, "localmesh serve to answer /healthz")
        exports = subprocess.run([LOCALMESH, "env", *served.place()], env=env, capture_output=True,
                                 text=True, check=True).stdout
        served.env = env | dict(shlex.split(line)[1].split("=", 1) for line in exports.splitlines())
        yield served
    finally:
        for child in served.children:
            stop(child)
        assert stop(process) == 0, log.read_text()


# ---------------------------------------------------------------- the browser


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = find_chromium()
    if path is None:
        pytest.skip("no Chromium: run `bash scripts/system-deps.sh` (Debian: apt-get install chromium) "
                    "or set LOCALMESH_CHROMIUM")
    return path


# Per module: the sync API runs an event loop of its own while it is open, which would stop
# the async tests of a later module from running theirs.
@pytest.fixture(scope="module")
def browser(chromium_path: str):
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install 'localmesh[test]'")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def studio(browser, served: Served) -> Iterator:
    """A fresh browser context, logged in to the Studio with the one-time link of
    ``localmesh studio --no-open``; page errors fail the test."""
    context = browser.new_context(viewport={"width": 1100, "height": 720}, accept_downloads=True)
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(served.login_link())
    page.wait_for_url(f"{served.url}/studio")
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"the page raised: {errors}"


@pytest.fixture
def screenshot(tmp_path: Path):
    """``screenshot(page, "studio-storage")``: a small PNG for the docs (see module doc)."""

    def take(page, name: str) -> Path:
        folder = IMAGES if os.environ.get("LOCALMESH_UPDATE_SCREENSHOTS") else tmp_path
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{name}.png"
        page.screenshot(path=str(target))
        assert target.stat().st_size > 1000
        return target

    return take
