"""The deterministic scripted LLM: an OpenAI Responses endpoint that answers from a script.

See docs/llm-scripts.md for the script format, the endpoint and the admin API.
"""

from .errors import AuthError, ScriptedDrop, ScriptedError, ScriptError
from .hub import LLMHub
from .player import Reply, ScriptPlayer
from .router import create_llm_router
from .script import (
    Answer,
    Call,
    ErrorAnswer,
    Match,
    Rule,
    Script,
    ToolResultMatch,
    coerce_script,
    load_demo_script,
    load_script,
    loads_script,
    parse_script,
)
from .transcript import TranscriptEntry, transcript_json

__all__ = [
    "Answer",
    "AuthError",
    "Call",
    "ErrorAnswer",
    "LLMHub",
    "Match",
    "Reply",
    "Rule",
    "Script",
    "ScriptError",
    "ScriptPlayer",
    "ScriptedDrop",
    "ScriptedError",
    "ToolResultMatch",
    "TranscriptEntry",
    "coerce_script",
    "create_llm_router",
    "load_demo_script",
    "load_script",
    "loads_script",
    "parse_script",
    "transcript_json",
]
