"""Which conversation a request belongs to, and its full input history.

Websocket clients send only new items plus ``previous_response_id``; request-mode clients send
the whole history. Both are reduced to one full history here. A request joins the conversation
that produced the output items it echoes (ids and call_ids are unique within a room), which also
recognises a client that retries on a new socket with the full history; otherwise it starts one.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from typing import Any

from .errors import ScriptedError


def request_input(request: dict[str, Any]) -> list[Any]:
    """The request's ``input`` as a list of items (a bare string is one user message)."""
    value = request.get("input", [])
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if isinstance(value, list):
        return value
    raise ScriptedError(400, "localmesh: 'input' must be a string or a list of items", fatal=True)


class Conversations:
    """Bounded: at most ``max_responses`` histories of about ``max_bytes`` in all are kept,
    the oldest forgotten first (a later ``previous_response_id`` to one then gets the
    same "not found" error as OpenAI gives for an expired response)."""

    def __init__(self, *, max_responses: int = 256, max_bytes: int = 32 * 1024 * 1024) -> None:
        # response id -> (conversation, history, its size in JSON bytes)
        self._histories: dict[str, tuple[str, list[Any], int]] = {}
        self._owners: dict[str, str] = {}  # output item id or call_id -> conversation
        self._count = 0
        self._max_responses = max_responses
        self._max_bytes = max_bytes
        self._bytes = 0

    def expand(self, request: dict[str, Any]) -> tuple[list[Any], str | None]:
        """The full history, and the conversation of ``previous_response_id`` if given."""
        items = request_input(request)
        previous = request.get("previous_response_id")
        if previous is None:
            return list(items), None
        known = self._histories.get(previous) if isinstance(previous, str) else None
        if known is None:
            raise ScriptedError(
                400,
                f"Previous response with id {previous!r} not found "
                "(localmesh keeps responses in memory, per room, until the room is reset).",
                code="previous_response_not_found",
                fatal=True,
            )
        conversation, history, _ = known
        return [*history, *items], conversation

    def identify(self, history: Sequence[Any], given: str | None, previous: str | None) -> str:
        if given is not None:
            return given
        if previous is not None:
            return previous
        for item in reversed(history):
            if isinstance(item, dict):
                for key in ("id", "call_id"):
                    value = item.get(key)
                    if isinstance(value, str) and value in self._owners:
                        return self._owners[value]
        self._count += 1
        return f"conv_{self._count:04d}"

    def remember(
        self, conversation: str, response_id: str, history: Sequence[Any], output: list[Any]
    ) -> None:
        kept = [*list(history), *output]
        size = len(json.dumps(kept, default=str))
        for item in output:
            for key in ("id", "call_id"):
                if isinstance(item.get(key), str):
                    self._owners[item[key]] = conversation
        while len(self._owners) > 16 * self._max_responses:
            del self._owners[next(iter(self._owners))]
        if size > self._max_bytes:
            return  # too big to keep at all: it cannot be continued by previous_response_id
        self._histories[response_id] = (conversation, copy.deepcopy(kept), size)
        self._bytes += size
        while self._histories and (
            len(self._histories) > self._max_responses or self._bytes > self._max_bytes
        ):
            _, _, dropped = self._histories.pop(next(iter(self._histories)))
            self._bytes -= dropped
