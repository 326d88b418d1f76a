"""localmesh's Worker SDK: a room client, a queue Worker, tools and LLM adapters.

    from localmesh.worker import RoomClient, Worker, RequiredStorage, OpenAIResponsesAdapter
    from localmesh.worker import AnthropicMessagesAdapter   # for claude-* models

It stands on ``localmesh.protocol`` only: it never imports the emulator. A scripted LLM played in
process comes from the harness (``localmesh.fixtures.llm.ScriptedLLMAdapter``).

The MeshAgent docs' service sample runs with only its imports changed:

    from localmesh.worker import (OpenAIResponsesAdapter, OpenAIResponsesToolResponseAdapter,
                                  ServiceHost, StorageToolkit, Worker, otel_config)
"""

from localmesh.worker.agent import Worker, WorkerStats
from localmesh.worker.anthropic import AnthropicMessagesAdapter, MessagesAdapter
from localmesh.worker.backoff import Backoff
from localmesh.worker.context import ChatContext
from localmesh.worker.errors import ConnectionLost, LLMError, RoomClosed, RoomError
from localmesh.worker.llm import LLMAdapter, OpenAIResponsesAdapter, ResponsesAdapter
from localmesh.worker.llm_http import HttpTransport
from localmesh.worker.otel import otel_config
from localmesh.worker.requirements import RequiredStorage, RequiredToolkit
from localmesh.worker.room import QueueInfo, RoomClient
from localmesh.worker.service_host import ServiceHost
from localmesh.worker.storage_client import DownloadedFile, StorageEntry
from localmesh.worker.tool_results import OpenAIResponsesToolResponseAdapter, ToolResponseAdapter
from localmesh.worker.tools import FileResult, StorageToolkit, Tool, ToolError, Toolkit, tool

__all__ = [
    "AnthropicMessagesAdapter",
    "Backoff",
    "ChatContext",
    "ConnectionLost",
    "DownloadedFile",
    "FileResult",
    "HttpTransport",
    "LLMAdapter",
    "LLMError",
    "MessagesAdapter",
    "OpenAIResponsesAdapter",
    "OpenAIResponsesToolResponseAdapter",
    "QueueInfo",
    "RequiredStorage",
    "RequiredToolkit",
    "ResponsesAdapter",
    "RoomClient",
    "RoomClosed",
    "RoomError",
    "ServiceHost",
    "StorageEntry",
    "StorageToolkit",
    "Tool",
    "ToolError",
    "ToolResponseAdapter",
    "Toolkit",
    "Worker",
    "WorkerStats",
    "otel_config",
    "tool",
]
