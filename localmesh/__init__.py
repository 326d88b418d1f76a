"""localmesh: a local, offline MeshAgent room, its Worker SDK and test harness.

The public names are loaded on first use, so ``import localmesh.protocol`` (or the pytest
plugin) does not pay for the web server::

    from localmesh import RoomServer, Worker, RoomClient, ScriptedLLMAdapter

The parts: ``localmesh.protocol`` (the wire), ``localmesh.emulator`` (the room server),
``localmesh.worker`` (our Worker SDK), ``localmesh.scripted_llm`` (the scripted LLM engine),
``localmesh.fixtures`` (the pytest plugin), ``localmesh.cli`` (the command).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_PUBLIC = {
    "RoomServer": "localmesh.emulator.server",
    "Worker": "localmesh.worker",
    "RoomClient": "localmesh.worker",
    "RequiredStorage": "localmesh.worker",
    "StorageToolkit": "localmesh.worker",
    "Toolkit": "localmesh.worker",
    "tool": "localmesh.worker",
    "OpenAIResponsesAdapter": "localmesh.worker",
    "RoomError": "localmesh.worker",
    "ScriptedLLMAdapter": "localmesh.fixtures.llm",
    "Script": "localmesh.scripted_llm",
    "load_script": "localmesh.scripted_llm",
    "SDK_VERSION": "localmesh.protocol.tokens",
}

__all__ = [  # the keys of _PUBLIC, spelled out for linters and type checkers
    "SDK_VERSION",
    "OpenAIResponsesAdapter",
    "RequiredStorage",
    "RoomClient",
    "RoomError",
    "RoomServer",
    "Script",
    "ScriptedLLMAdapter",
    "StorageToolkit",
    "Toolkit",
    "Worker",
    "load_script",
    "tool",
]

if TYPE_CHECKING:
    from localmesh.emulator.server import RoomServer
    from localmesh.fixtures.llm import ScriptedLLMAdapter
    from localmesh.protocol.tokens import SDK_VERSION
    from localmesh.scripted_llm import Script, load_script
    from localmesh.worker import (
        OpenAIResponsesAdapter,
        RequiredStorage,
        RoomClient,
        RoomError,
        StorageToolkit,
        Toolkit,
        Worker,
        tool,
    )


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'localmesh' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
