"""Transcript entries: every request a player saw and what it answered, in order."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TranscriptEntry:
    """One request and its answer.

    ``rule`` is the rule's name (or ``rules[i]``), ``"fallback"``, or ``None`` when nothing
    matched. Exactly one of ``response`` / ``error`` is set; a drop has ``dropped`` and an error.
    ``transport`` is ``websocket``, ``request``, ``stream`` (SSE) or ``python``. ``provider``
    is who was asked (``openai``, ``anthropic``, ``grok``), ``api`` the wire format
    (``responses``, ``chat.completions``, ``messages``), ``model`` the request's model (``None``
    when it named none); ``request`` and ``response`` are in that API's shapes.
    ``participant`` is the name in the token that sent it (``None`` for an API key or a call
    in Python).
    """

    index: int
    room: str
    conversation: str | None
    turn: int
    rule: str | None
    transport: str
    request: dict[str, Any]
    response: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    dropped: bool = False
    delay: float = 0.0
    provider: str = "openai"
    api: str = "responses"
    model: str | None = None
    participant: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "room": self.room,
            "provider": self.provider,
            "api": self.api,
            "model": self.model,
            "participant": self.participant,
            "conversation": self.conversation,
            "turn": self.turn,
            "rule": self.rule,
            "transport": self.transport,
            "delay": self.delay,
            "dropped": self.dropped,
            "request": self.request,
            "response": self.response,
            "error": self.error,
        }


def transcript_json(entries: Iterable[TranscriptEntry]) -> str:
    """A canonical JSON text: the same script and requests give the same bytes."""
    return json.dumps([e.to_dict() for e in entries], indent=2, sort_keys=True, ensure_ascii=False)
