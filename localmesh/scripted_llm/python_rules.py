"""Rules written in Python, beside or instead of YAML.

A rule may be a plain function of the request (an ``LLMRequest``). It returns the answer, or
``None`` to let the next rules try::

    def save_note(request: LLMRequest):
        if request.tool_results:
            return "Saved."                                   # text
        return Call("write_file", {"path": "note.txt", "text": request.user_text},
                    namespace="storage")                      # a tool call (or a list of them)

    script = compose(
        expect(tools=["storage.write_file"], instructions="notes"),   # every request must
        save_note,
        {"answer": {"text": "I only take notes."}},                    # a YAML-form rule
    )

A function may also return an ``Answer``, or an answer in YAML form (``{"error": {...}}``).
An ``assert`` that fails inside it, an exception, or a value that is no answer is a test
failure: the request gets an error reply and the player keeps the failure (``player.check()``).
Functions run on the event loop as the request arrives: keep them quick and plain (not
``async``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ScriptError
from .matching import LLMRequest
from .script import (
    Answer,
    Call,
    Rule,
    Script,
    build_rules,
    load_script,
    loads_script,
    parse_answer,
    parse_script,
)

Respond = Callable[[LLMRequest], Any]


@dataclass(frozen=True)
class RuleSpec:
    """A rule before it has its place in a script: what ``rule()`` and ``expect()`` make."""

    respond: Respond | None = None
    answer: Mapping[str, Any] | None = None
    match: Mapping[str, Any] | None = None
    expect: Mapping[str, Any] | None = None
    times: int | str | None = None
    name: str | None = None

    def data(self) -> dict[str, Any]:
        """The YAML-form part of the rule."""
        keys = ("name", "times", "match", "expect", "answer")
        return {key: getattr(self, key) for key in keys if getattr(self, key) is not None}


def rule(
    respond: Respond | None = None, /, *, name: str | None = None, times: int | str | None = None,
    match: Mapping[str, Any] | None = None, expect: Mapping[str, Any] | None = None,
    answer: Mapping[str, Any] | None = None,
) -> RuleSpec:
    """A rule: a function that answers (``respond``) or a YAML-form ``answer``, tried only when
    ``match`` (YAML conditions) holds, ``times`` times at most (``"once"``, N, ``"always"``),
    after checking ``expect`` (see ``expect()``)."""
    if respond is not None and not callable(respond):
        raise TypeError(f"respond must be a function of the request, not {respond!r}")
    return RuleSpec(respond=respond, answer=answer, match=match, expect=expect, times=times,
                    name=name)


def expect(
    *, tools: Iterable[str] | None = None, tools_exactly: Iterable[str] | None = None,
    instructions: str | None = None, user: str | None = None, model: str | None = None,
    match: Mapping[str, Any] | None = None, name: str | None = None,
    times: int | str | None = None,
) -> RuleSpec:
    """A rule that only checks: every request it sees (those ``match`` fits) must offer
    ``tools`` (names, ``write_file`` or ``storage.write_file``), or exactly ``tools_exactly``;
    have ``instructions`` and the latest ``user`` message containing these texts; and use
    ``model``. A request that does not fails the test with a diff; one that does goes on to the
    next rules."""
    wanted: dict[str, Any] = {
        "tools": None if tools is None else list(tools),
        "tools_exactly": None if tools_exactly is None else list(tools_exactly),
        "instructions": instructions, "user": user, "model": model,
    }
    checks = {key: value for key, value in wanted.items() if value is not None}
    if not checks:
        raise TypeError("expect() needs at least one of tools, tools_exactly, instructions, user, model")
    return RuleSpec(expect=checks, match=match, name=name, times=times)


def compose(
    *items: Any, fallback: Mapping[str, Any] | None = None, description: str | None = None,
    source: str = "<python>",
) -> Script:
    """A script from rules in order. Each item is a function (a rule that answers), a
    ``rule(...)`` or ``expect(...)``, a YAML-form rule mapping, a ``Rule``, or a whole ``Script``
    (its rules; and its fallback, unless ``fallback`` is given)."""
    flat: list[Rule | RuleSpec | Mapping[str, Any]] = []
    inherited: Answer | None = None
    for item in items:
        if isinstance(item, Script):
            flat += item.rules
            inherited = inherited or item.fallback
        elif isinstance(item, Rule | RuleSpec | Mapping):
            flat.append(item)
        elif callable(item):
            flat.append(rule(item))
        else:
            raise TypeError(
                f"a script item must be a function, rule(...), expect(...), a rule mapping, "
                f"a Rule or a Script, not {item!r}")
    if not flat and fallback is None and inherited is None:
        raise ScriptError(source, [("top level", "the script needs at least one rule or a fallback")])
    rules = build_rules(_with_default_names(flat), source)
    answer = parse_answer(fallback, source) if fallback is not None else inherited
    return Script(rules=rules, fallback=answer, source=source, description=description)


def _with_default_names(
    items: list[Rule | RuleSpec | Mapping[str, Any]],
) -> list[Rule | tuple[Mapping[str, Any], Respond | None]]:
    """A function names its rule (``save_note``) unless that name is already taken: a default
    name never makes a script invalid."""
    taken = {item.name for item in items if isinstance(item, Rule | RuleSpec)}
    taken |= {item.get("name") for item in items if isinstance(item, Mapping)}
    built: list[Rule | tuple[Mapping[str, Any], Respond | None]] = []
    for item in items:
        if isinstance(item, Rule):
            built.append(item)
        elif isinstance(item, Mapping):
            built.append((item, None))
        else:
            data = item.data()
            default = _function_name(item.respond)
            if item.name is None and default is not None and default not in taken:
                data["name"] = default
                taken.add(default)
            built.append((data, item.respond))
    return built


def _function_name(respond: Respond | None) -> str | None:
    name = getattr(respond, "__name__", None)
    return name if isinstance(name, str) and name.isidentifier() else None


def to_answer(value: Any, source: str = "<python rule>") -> Answer | None:
    """What a Python rule returned, as an answer (``None``: it passes). ``TypeError`` or
    ``ScriptError`` say what is wrong with anything else."""
    if value is None or isinstance(value, Answer):
        return value
    if isinstance(value, str):
        return Answer(text=value)
    if isinstance(value, Call):
        return Answer(calls=(value,))
    if isinstance(value, list | tuple) and value and all(isinstance(c, Call) for c in value):
        return Answer(calls=tuple(value))
    if isinstance(value, Mapping):
        return parse_answer(value, source)
    raise TypeError(
        f"returned {value!r}; return None (pass), a str (text), a Call or a list of Calls, an "
        f"Answer, or an answer mapping such as {{'text': ...}}")


def coerce_script(value: Any) -> Script:
    """Accept a ``Script``, parsed data, a ``Path`` to a file, a string of YAML text, a function
    (a Python rule), or a list of script items (see ``compose``)."""
    if isinstance(value, Script):
        return value
    if isinstance(value, Mapping):
        return parse_script(value, "<dict>")
    if isinstance(value, str):
        return loads_script(value, "<string>")
    if isinstance(value, os.PathLike):
        return load_script(value)
    if isinstance(value, list | tuple):
        return compose(*value)
    if isinstance(value, RuleSpec) or callable(value):
        return compose(value)
    raise TypeError(f"cannot make a script of {value!r}")
