"""The scripted LLM engine: script format, matching, the player and its transcripts.

It knows nothing of HTTP servers or rooms: the emulator serves it over HTTP
(``localmesh.emulator.llm``), the harness plays it in process (``localmesh.fixtures.llm``).
See docs/llm-scripts.md for the script format.
"""

from .errors import AuthError, ScriptedDrop, ScriptedError, ScriptError
from .player import Reply, ScriptPlayer
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
    "load_demo_script",
    "load_script",
    "loads_script",
    "parse_script",
    "transcript_json",
]
