"""Fixtures for running the real MeshAgent SDK against a fresh emulator per test."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from compat_helpers import sdk_client, sdk_token
from meshagent.api import RoomClient

from localmesh.emulator import RoomServer


@pytest.fixture
def server(localmesh_server: RoomServer) -> RoomServer:
    # Empty long-polls answer quickly unless a test widens the window.
    localmesh_server.long_poll_window = 0.3
    return localmesh_server


@pytest.fixture
def token(server: RoomServer) -> Callable[..., str]:
    def make(room: str = "r", **kwargs: Any) -> str:
        return sdk_token(server, room=room, **kwargs)

    return make


@pytest.fixture
def client(server: RoomServer) -> Callable[..., RoomClient]:
    """``client(room, token=None, name=...)``: a real RoomClient with an SDK-made token."""

    def make(room: str = "r", token: str | None = None, name: str = "tester", **kwargs: Any):
        jwt_text = token or sdk_token(server, room=room, name=name)
        return sdk_client(server, room, jwt_text, **kwargs)

    return make


@pytest.fixture
def sdk_env(server: RoomServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The process environment the real SDK reads, pointing at this test's emulator."""
    # worker.stop() returns once the Worker's pending long-poll receive does: keep that short.
    server.long_poll_window = 0.3
    for name in ("OPENAI_API_KEY", "OPENAI_MODEL", "ANTHROPIC_API_KEY", "ANTHROPIC_MODEL",
                 "ANTHROPIC_MAX_TOKENS", "GROK_API_KEY", "XAI_API_KEY", "MESHAGENT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    env = server.env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env
