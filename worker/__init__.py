"""localmesh's Worker SDK: a room client, a queue Worker, tools and LLM adapters.

    from worker import RoomClient, Worker, RequiredStorage, ScriptedLLMAdapter
"""

from worker.agent import Worker, WorkerStats
from worker.backoff import Backoff
from worker.context import ChatContext
from worker.errors import ConnectionLost, RoomClosed, RoomError
from worker.llm import (
    HttpTransport,
    LLMError,
    OpenAIResponsesAdapter,
    ResponsesAdapter,
    ScriptedLLMAdapter,
    ScriptTransport,
)
from worker.requirements import RequiredStorage, RequiredToolkit
from worker.room import QueueInfo, RoomClient
from worker.storage_client import DownloadedFile, StorageEntry
from worker.tool_results import ToolResponseAdapter
from worker.tools import FileResult, StorageToolkit, Tool, ToolError, Toolkit, tool

__all__ = [
    "Backoff",
    "ChatContext",
    "ConnectionLost",
    "DownloadedFile",
    "FileResult",
    "HttpTransport",
    "LLMError",
    "OpenAIResponsesAdapter",
    "QueueInfo",
    "RequiredStorage",
    "RequiredToolkit",
    "ResponsesAdapter",
    "RoomClient",
    "RoomClosed",
    "RoomError",
    "ScriptTransport",
    "ScriptedLLMAdapter",
    "StorageEntry",
    "StorageToolkit",
    "Tool",
    "ToolError",
    "ToolResponseAdapter",
    "Toolkit",
    "Worker",
    "WorkerStats",
    "tool",
]
