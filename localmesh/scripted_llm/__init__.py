"""The scripted LLM engine: script format, matching, the player and its transcripts.

It knows nothing of HTTP servers or rooms: the emulator serves it over HTTP
(``localmesh.emulator.llm``), the harness plays it in process (``localmesh.fixtures.llm``).
See docs/llm-scripts.md for the script format, and its "Rules in Python" section for
``compose``, ``rule`` and ``expect``.
"""

from .errors import AuthError, ScriptedDrop, ScriptedError, ScriptError, ScriptFailed
from .matching import LLMRequest, OfferedTool, ToolResult
from .player import Reply, RuleFailure, ScriptPlayer
from .python_rules import RuleSpec, coerce_script, compose, expect, rule
from .script import (
    Answer,
    Call,
    ErrorAnswer,
    Expectation,
    Match,
    Rule,
    Script,
    ToolResultMatch,
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
    "Expectation",
    "LLMRequest",
    "Match",
    "OfferedTool",
    "Reply",
    "Rule",
    "RuleFailure",
    "RuleSpec",
    "Script",
    "ScriptError",
    "ScriptFailed",
    "ScriptPlayer",
    "ScriptedDrop",
    "ScriptedError",
    "ToolResult",
    "ToolResultMatch",
    "TranscriptEntry",
    "coerce_script",
    "compose",
    "expect",
    "load_demo_script",
    "load_script",
    "loads_script",
    "parse_script",
    "rule",
    "transcript_json",
]
