"""Where a local emulator lives by default, and its project key read from its data dir."""

from __future__ import annotations

import asyncio
from pathlib import Path

from localmesh.emulator.keys import load_or_create_keys
from localmesh.emulator.store import Store
from localmesh.protocol.llm_urls import llm_environment
from localmesh.protocol.tokens import ApiKey

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_DATA_DIR = Path(".localmesh")


async def local_project_key(data_dir: Path = DEFAULT_DATA_DIR) -> ApiKey:
    """The project key of the emulator that uses ``data_dir``, created if it is new."""
    store = await Store.open(data_dir)
    try:
        return (await load_or_create_keys(store))[0]
    finally:
        await store.close()


def local_api_key(data_dir: Path = DEFAULT_DATA_DIR) -> str | None:
    """The ``ma-`` key of a local data dir, or None when there is no emulator there yet."""
    if not (data_dir / "localmesh.db").exists():
        return None
    return asyncio.run(local_project_key(data_dir)).text


def environment(url: str, api_key: str, project_id: str) -> dict[str, str]:
    """What the real SDK and CLI (and plain LLM clients) read to reach the server at ``url``."""
    return {
        "MESHAGENT_API_URL": url,
        # An active CLI profile's URL wins over MESHAGENT_API_URL for rooms; this does not.
        "MESHAGENT_ROOM_URL": url.replace("http", "ws", 1),
        "MESHAGENT_API_KEY": api_key,
        "MESHAGENT_PROJECT_ID": project_id,
        "MESHAGENT_DISABLE_VERSION_CHECK": "1",
        # The LLM proxy's providers, as `meshagent room connect` exports them: the SDK derives
        # the same URLs from MESHAGENT_API_URL, but some of its paths (grok-* models under
        # `meshagent process`) and plain OpenAI/Anthropic clients read only these.
        **llm_environment(url),
    }
