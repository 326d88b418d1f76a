"""The chat context of one queue message: rules and the Responses input items."""

from __future__ import annotations

from typing import Any


class ChatContext:
    """What the LLM sees for one task.

    ``rules`` become the request's ``instructions`` (one per line, as the MeshAgent
    adapter joins them); ``messages`` are the ``input`` items, in order: the user message,
    then the model's output items and the ``function_call_output`` items of each turn.
    """

    def __init__(self, rules: list[str] | None = None) -> None:
        self.rules: list[str] = list(rules or [])
        self.messages: list[dict[str, Any]] = []

    def append_rules(self, rules: list[str]) -> None:
        self.rules.extend(rules)

    def replace_rules(self, rules: list[str]) -> None:
        self.rules = list(rules)

    @property
    def instructions(self) -> str | None:
        text = "\n".join(self.rules)
        return text if text.strip() else None

    def append_user_message(self, text: str | None = None, *, message: str | None = None) -> dict[str, Any]:
        """Add the user's text (``message=`` is the MeshAgent SDK's spelling)."""
        content = text if text is not None else message
        if content is None:
            raise TypeError("append_user_message needs the text of the message")
        item = {"role": "user", "content": content}
        self.messages.append(item)
        return item

    def append_items(self, items: list[dict[str, Any]]) -> None:
        self.messages.extend(items)
