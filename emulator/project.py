"""The local project: its API keys, created on first start and kept in SQLite."""

from __future__ import annotations

from datetime import UTC, datetime

from localmesh.emulator.store import Store
from localmesh.protocol.tokens import ApiKey


async def load_or_create_keys(store: Store) -> list[ApiKey]:
    keys = [ApiKey(key_id, project, secret) for key_id, project, secret in await store.api_keys()]
    if not keys:
        key = ApiKey.generate()
        await store.add_api_key(key.key_id, key.project_id, key.secret, datetime.now(UTC).isoformat())
        keys = [key]
    return keys
