"""``localmesh studio``: a one-time login link for a running server, printed or opened."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx
import pytest
from studio_support import LOCALMESH, free_port

from localmesh.emulator import RoomServer

pytestmark = pytest.mark.slow


async def studio(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        LOCALMESH,
        "studio",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


async def test_the_printed_link_logs_a_browser_in_once(tmp_path: Path) -> None:
    async with RoomServer(data_dir=tmp_path / "data") as server:
        code, out, err = await studio(
            "--no-open", "--port", str(server.port), "--data-dir", str(tmp_path / "data")
        )
        assert code == 0, err
        link = out.strip()
        assert link.startswith(f"{server.url}/studio/login?code=")
        async with httpx.AsyncClient() as browser:
            first = await browser.get(link)
            assert first.status_code == 303 and "HttpOnly" in first.headers["set-cookie"]
            assert (await browser.get(f"{server.url}/studio/api/rooms")).status_code == 200
        async with httpx.AsyncClient() as other:
            assert (await other.get(link)).status_code == 401  # used already


async def test_without_no_open_it_opens_the_browser(tmp_path: Path) -> None:
    async with RoomServer(data_dir=tmp_path / "data") as server:
        # $BROWSER picks the program Python's webbrowser runs: `true` stands in for one.
        code, out, err = await studio(
            "--port", str(server.port), "--data-dir", str(tmp_path / "data"), env={"BROWSER": "true"}
        )
    assert code == 0, err
    assert out.startswith(f"Opened the Studio: {server.url}/studio/login?code=")


async def test_it_says_what_is_missing(tmp_path: Path) -> None:
    code, _, err = await studio("--no-open", "--data-dir", str(tmp_path / "nothing"))
    assert code == 1 and "no emulator data in" in err and "start `localmesh serve` first" in err
    async with RoomServer(data_dir=tmp_path / "data"):
        pass  # leaves a data dir, and no server
    port = free_port()
    code, _, err = await studio("--no-open", "--port", str(port), "--data-dir", str(tmp_path / "data"))
    assert code == 1 and f"no emulator answers on http://127.0.0.1:{port}" in err
