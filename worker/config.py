"""Finding the room server and minting participant tokens, the way the MeshAgent CLI does.

Order: explicit options, then ``MESHAGENT_API_URL``/``MESHAGENT_API_KEY`` (what
``localmesh env`` prints), then a local ``localmesh serve`` on its default port with its
key found by ``local_key`` (the ``localmesh`` CLI passes one that reads the emulator's data
dir; the Worker SDK itself knows nothing of the emulator).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from localmesh.protocol.tokens import ApiKey, AuthError, mint_token

LOCAL_API_URL = "http://127.0.0.1:8765"


class ConfigError(Exception):
    """The server or its key could not be found; the message says what to do."""


@dataclass(frozen=True)
class ServerTarget:
    api_url: str
    api_key: ApiKey

    def token(
        self, room: str, name: str, role: str = "agent", api: dict[str, Any] | None = None
    ) -> str:
        """A participant token; ``api`` is its ``api`` grant (None: every section)."""
        return mint_token(self.api_key, room=room, name=name, role=role, api=api)


LocalKey = Callable[[], str | None]


def resolve_target(
    api_url: str | None = None, api_key: str | None = None, local_key: LocalKey | None = None
) -> ServerTarget:
    url = (api_url or os.environ.get("MESHAGENT_API_URL") or LOCAL_API_URL).rstrip("/")
    key_text = api_key or os.environ.get("MESHAGENT_API_KEY") or (local_key and local_key())
    if not key_text:
        raise ConfigError(
            "no API key: set MESHAGENT_API_KEY (see `localmesh env`), pass --api-key, "
            "or start `localmesh serve` in this directory"
        )
    try:
        return ServerTarget(url, ApiKey.parse(key_text))
    except AuthError as error:
        raise ConfigError(f"the API key is not usable: {error}") from None


def participant_token(target: ServerTarget, room: str, name: str, role: str = "agent") -> str:
    """``MESHAGENT_TOKEN`` when it is for this room (as the MeshAgent CLI does), else minted."""
    token = os.environ.get("MESHAGENT_TOKEN")
    if token and os.environ.get("MESHAGENT_ROOM") == room:
        return token
    return target.token(room, name, role)
