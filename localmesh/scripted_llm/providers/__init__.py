"""The wire formats the scripted LLM speaks: one engine, a thin translation per API.

The engine (``ScriptPlayer``) matches and answers on OpenAI Responses shapes. Each wire format
turns its API's request into that shape and the engine's Response into its API's reply,
stream and errors; nothing else differs between providers. See docs/llm-providers.md.
"""

from .anthropic import ANTHROPIC_MESSAGES, AnthropicMessagesWire
from .base import WireFormat
from .chat_completions import CHAT_COMPLETIONS, ChatCompletionsWire
from .responses import RESPONSES, ResponsesWire

WIRES: dict[str, WireFormat] = {wire.api: wire for wire in (RESPONSES, CHAT_COMPLETIONS, ANTHROPIC_MESSAGES)}

__all__ = [
    "ANTHROPIC_MESSAGES",
    "CHAT_COMPLETIONS",
    "RESPONSES",
    "WIRES",
    "AnthropicMessagesWire",
    "ChatCompletionsWire",
    "ResponsesWire",
    "WireFormat",
]
