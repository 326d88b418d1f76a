"""docs/studio.md and the README's Studio section: the API they list is the one served, and
the screenshots they show are there (small PNGs taken by the browser tests)."""

from __future__ import annotations

import re
import warnings

import pytest
from doc_blocks import ROOT

from localmesh.emulator import RoomServer
from localmesh.emulator.app import create_app


def openapi_of(server: RoomServer) -> dict:
    """The server's route listing (OpenAPI), from a second app on the same state."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # other routers' duplicate operation ids
        return create_app(server.state).openapi()


STUDIO_MD = "docs/studio.md"
PNG = b"\x89PNG\r\n\x1a\n"


def _documented_routes() -> list[tuple[str, str]]:
    text = (ROOT / STUDIO_MD).read_text(encoding="utf-8")
    api = text.split("## The JSON API", 1)[1].split("\n## ", 1)[0]
    found = []
    for cell in re.findall(r"^\| (.+?) \| .+ \|$", api, re.M):
        for method, path in re.findall(r"`(GET|POST|PUT|DELETE) (/studio/api/[^`?\[ ]*)", cell):
            found.append((method, path))
    return found


async def test_every_documented_api_route_is_served() -> None:
    documented = _documented_routes()
    assert len(documented) >= 18
    async with RoomServer() as server:
        served = openapi_of(server)["paths"]
    missing = [(method, path) for method, path in documented if method.lower() not in served.get(path, {})]
    assert not missing, f"{STUDIO_MD} lists routes the server does not have: {missing}"


@pytest.mark.parametrize("doc", ["README.md", STUDIO_MD])
def test_the_screenshots_shown_exist_and_are_small_pngs(doc: str) -> None:
    text = (ROOT / doc).read_text(encoding="utf-8")
    images = re.findall(r"!\[[^\]]+\]\(([^)]+\.png)\)", text)
    assert images, f"{doc} shows no screenshot"
    for image in images:
        path = (ROOT / doc).parent / image
        assert path.is_file(), f"{doc} shows {image}, which is not there"
        data = path.read_bytes()
        assert data.startswith(PNG) and len(data) < 250_000, f"{image}: not a small PNG"
