"""``LLMServer``: the real emulator (``emulator.RoomServer`` on 127.0.0.1) seen from the LLM tests.

Authentication is the emulator's: a participant JWT speaks for its room, the local API key
for the ``X-Localmesh-Room`` header's room (else ``default``). A uniquely named module, not
``conftest``: every test directory has a conftest, and only one of them can be imported by that name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from localmesh.emulator import RoomServer
from localmesh.emulator.llm import LLMHub
from localmesh.scripted_llm import loads_script


@dataclass
class FakeSleep:
    """Records the delays asked for and returns at once."""

    calls: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@dataclass
class LLMServer:
    server: RoomServer
    sleep: FakeSleep

    @property
    def hub(self) -> LLMHub:
        return self.server.llm

    @property
    def url(self) -> str:  # http://127.0.0.1:<port>
        return self.server.url

    @property
    def api_key(self) -> str:
        return self.server.api_key

    @property
    def openai_base(self) -> str:
        return f"{self.url}/openai/v1"

    def room_token(self, room: str, name: str = "llm-test") -> str:
        """A participant JWT for ``room``, signed by the emulator's project key."""
        return self.server.mint_token(room=room, name=name)

    def admin(self) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10)

    def use_script(self, room: str, text: str) -> None:
        self.hub.set_script(room, loads_script(text, "test.yaml"))
