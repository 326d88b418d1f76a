"""Where a local emulator lives by default, and its project key read from its data dir."""

from __future__ import annotations

import asyncio
from pathlib import Path

from localmesh.emulator.project import load_or_create_keys
from localmesh.emulator.store import Store
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
