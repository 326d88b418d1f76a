"""The ``llm_server`` fixture: the LLM endpoint of a real emulator, with a recording sleep."""

from __future__ import annotations

import pytest
from llm_harness import FakeSleep, LLMServer

from localmesh.emulator import RoomServer


@pytest.fixture
def llm_server(localmesh_server: RoomServer) -> LLMServer:
    sleep = FakeSleep()
    # Players read the hub's sleep when a room first plays, so this covers every room.
    localmesh_server.llm.sleep = sleep
    return LLMServer(server=localmesh_server, sleep=sleep)
