"""The real MeshAgent ``Worker`` with each of the SDK's other LLM adapters, on the emulator.

Same run as test_real_worker.py (the demo script saves poem.txt through the real
``StorageToolkit``), but the adapter speaks another provider's API: Anthropic's Messages
(streamed, as the SDK always does), OpenAI's Chat Completions, and Grok's Responses endpoint.
Each adapter finds its URL the SDK's way, from the environment ``localmesh env`` prints, and
authenticates with the room token the Worker binds to it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from compat_helpers import file_written, installed_version, wait_for_transcript
from meshagent.agents.worker import Worker
from meshagent.anthropic import AnthropicMessagesAdapter, AnthropicOpenAIResponsesStreamAdapter
from meshagent.api import RoomClient
from meshagent.openai.tools.completions_adapter import OpenAICompletionsAdapter
from meshagent.tools.storage import StorageToolkit, StorageToolRoomMount
from packaging.version import Version

from localmesh.emulator import RoomServer
from localmesh.scripted_llm import load_demo_script

# The SDK's GrokResponsesAdapter came in meshagent-openai 0.51.0.
GROK_ADAPTER = "0.51.0"
if installed_version("meshagent-openai") >= Version(GROK_ADAPTER):
    from meshagent.openai.tools.responses_adapter import GrokResponsesAdapter

pytestmark = [
    pytest.mark.compat,
    pytest.mark.localmesh_only(reason="the scripted LLM"),
    pytest.mark.usefixtures("sdk_env"),
    # anthropic's own ParsedMessage.model_dump warns about its parsed text blocks (the SDK dumps
    # every final message); it says nothing about what localmesh sent.
    pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning"),
]

ROOM = "provider-room"
QUEUE = "jobs"
PROMPT_TEXT = "save a poem about ai to poem.txt"
RULES = ["You are the localmesh test worker."]
STOP = 10.0
POEM = load_demo_script().rules[0].answer.calls[0].arguments["text"]
CALL_ID = "call_save-poem_1"
SAVED = "I saved a poem about AI to poem.txt."

# (adapter factory, provider, api) for each SDK adapter; each is built after sdk_env set the
# environment, as a program would build it.
ADAPTERS: dict[str, tuple[Callable[[], Any], str, str]] = {
    "anthropic-messages": (
        lambda: AnthropicMessagesAdapter(model="claude-sonnet-4-5"), "anthropic", "messages",
    ),
    "anthropic-responses-stream": (
        lambda: AnthropicOpenAIResponsesStreamAdapter(model="claude-sonnet-4-5"), "anthropic", "messages",
    ),
    "openai-chat-completions": (
        lambda: OpenAICompletionsAdapter(model="gpt-4.1"), "openai", "chat.completions",
    ),
    # `meshagent process` builds it this way for grok-* models: the base URL from GROK_BASE_URL.
    "grok-responses": (
        lambda: GrokResponsesAdapter(model="grok-4.6", base_url=os.environ["GROK_BASE_URL"]),
        "grok", "responses",
    ),
}


@asynccontextmanager
async def running_worker(room: RoomClient, adapter: Any) -> AsyncIterator[Worker]:
    worker = Worker(
        queue=QUEUE,
        llm_adapter=adapter,
        toolkits=[StorageToolkit(mounts=[StorageToolRoomMount(path="/", room=room)])],
        rules=RULES,
    )
    await worker.start(room=room)
    try:
        yield worker
    finally:
        async with asyncio.timeout(STOP):
            await worker.stop()


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.sdk(
        min=GROK_ADAPTER, reason="the SDK's GrokResponsesAdapter came in meshagent-openai 0.51.0"))
    if name == "grok-responses" else name
    for name in ADAPTERS
])
async def test_the_real_worker_saves_the_demo_poem_through_each_provider(
    server: RoomServer, client: Callable[..., RoomClient], name: str
) -> None:
    make, provider, api = ADAPTERS[name]
    async with client(ROOM, name="worker") as room, running_worker(room, make()):
        async with client(ROOM, name="sender") as sender:
            text = await file_written(
                sender, "poem.txt",
                lambda: sender.queues.send(name=QUEUE, message={"prompt": PROMPT_TEXT}, create=True),
            )
            entries = await wait_for_transcript(server, ROOM, 2)

    assert text == POEM
    assert [(e.rule, e.turn, e.conversation) for e in entries] == [
        ("save-poem", 1, "conv_0001"), ("poem-saved", 2, "conv_0001"),
    ]
    assert {(e.provider, e.api) for e in entries} == {(provider, api)}
    assert entries[0].model == entries[0].request["model"] != ""
    # The storage tool's answer came back in the provider's own shape, with the scripted id.
    second = entries[1].request
    if api == "messages":
        assert entries[0].transport == "stream"  # the SDK always streams from Anthropic
        results = [b for m in second["messages"] for b in m["content"] if isinstance(b, dict)
                   and b.get("type") == "tool_result"]
        assert [r["tool_use_id"] for r in results] == [CALL_ID]
        assert "the file was saved" in str(results[0]["content"])
        assert entries[1].response["stop_reason"] == "end_turn"
        assert entries[1].response["content"] == [{"type": "text", "text": SAVED}]
    elif api == "chat.completions":
        tool_messages = [m for m in second["messages"] if m["role"] == "tool"]
        assert [m["tool_call_id"] for m in tool_messages] == [CALL_ID]
        assert "the file was saved" in tool_messages[0]["content"]
        assert entries[1].response["choices"][0]["message"]["content"] == SAVED
    else:
        outputs = [i for i in second["input"] if i.get("type") == "function_call_output"]
        assert [o["call_id"] for o in outputs] == [CALL_ID]
        assert entries[1].response["output"][0]["content"][0]["text"] == SAVED
