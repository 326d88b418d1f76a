"""A tiny harness: the LLM router on a bare FastAPI app, served by uvicorn on 127.0.0.1.

It stands in for the real room server until that exists; tests only use ``llm_server``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from emulator.llm import AuthError, LLMHub, create_llm_router, loads_script

API_KEY = "local-api-key"
ROOM_TOKEN_PREFIX = "room-token:"  # "room-token:<room>" is a participant token for <room>


async def stub_authenticate(token: str | None) -> str | None:
    if token == API_KEY:
        return None
    if token is not None and token.startswith(ROOM_TOKEN_PREFIX):
        return token.removeprefix(ROOM_TOKEN_PREFIX)
    raise AuthError("localmesh: the token is not valid" if token else "localmesh: no token given")


def room_token(room: str) -> str:
    return ROOM_TOKEN_PREFIX + room


@dataclass
class FakeSleep:
    """Records the delays asked for and returns at once."""

    calls: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    async def startup(self, sockets: list | None = None) -> None:  # type: ignore[override]
        await super().startup(sockets=sockets)
        self.ready.set()


@dataclass
class LLMServer:
    hub: LLMHub
    sleep: FakeSleep
    url: str  # http://127.0.0.1:<port>

    @property
    def openai_base(self) -> str:
        return f"{self.url}/openai/v1"

    def admin(self) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10)

    def use_script(self, room: str, text: str) -> None:
        self.hub.set_script(room, loads_script(text, "test.yaml"))


@pytest.fixture
async def llm_server() -> AsyncIterator[LLMServer]:
    sleep = FakeSleep()
    hub = LLMHub(sleep=sleep)
    app = FastAPI()
    app.include_router(create_llm_router(hub, stub_authenticate))
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
    server = _Server(config)
    serving = asyncio.create_task(server.serve())
    ready = asyncio.create_task(server.ready.wait())
    await asyncio.wait({serving, ready}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    if not server.ready.is_set():
        ready.cancel()
        serving.cancel()
        raise RuntimeError("uvicorn did not start")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield LLMServer(hub=hub, sleep=sleep, url=f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, timeout=10)
