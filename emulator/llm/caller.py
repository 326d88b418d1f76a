"""Who sent an LLM request, as the endpoint's ``authenticate`` callable reports it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    """A participant token's room, or the API key of a project (``room`` None)."""

    room: str | None  # the room (key) of a participant token; None for an API key
    scope: Callable[[str], str] = lambda room: room  # a room name -> its key in the caller's project
    participant: str | None = None  # a participant token's name; None for an API key
