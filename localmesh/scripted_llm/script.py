"""The script format: loading YAML/JSON, validating it, and the typed rules the player runs.

Validation happens in two passes. A JSON schema checks the shape (keys, types, ranges) and its
errors are rewritten into short sentences; then Python checks what a schema says badly
(exactly one kind of answer, regular expressions, ``times`` values, duplicate names).
Rules written in Python (functions, ``expect(...)``) are built in ``python_rules.py``.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .errors import ScriptError

# ---------------------------------------------------------------- the typed script


@dataclass(frozen=True)
class ToolResultMatch:
    """``match.tool_result`` in its object form: one new function_call_output must fit all."""

    call_id: str | None = None
    output: re.Pattern[str] | None = None
    name: str | None = None


@dataclass(frozen=True)
class Match:
    """The conditions of a rule; ``None`` means "any"."""

    user: re.Pattern[str] | None = None
    instructions: re.Pattern[str] | None = None
    tool_result: bool | ToolResultMatch | None = None
    model: re.Pattern[str] | None = None
    turn: int | None = None
    provider: re.Pattern[str] | None = None  # openai, anthropic, grok
    api: re.Pattern[str] | None = None  # responses, chat.completions, messages


@dataclass(frozen=True)
class Call:
    """One function call to answer with. ``arguments`` is sent as a JSON string."""

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    namespace: str | None = None
    call_id: str | None = None


@dataclass(frozen=True)
class ErrorAnswer:
    message: str
    status: int = 500
    retry_after: float | None = None
    type: str | None = None
    code: str | None = None
    websocket: bool = False  # an in-stream ``error`` event rather than an HTTP status


@dataclass(frozen=True)
class Answer:
    """What to answer. Exactly one of text / calls / json_text / error / drop is set."""

    text: str | None = None
    calls: tuple[Call, ...] = ()
    json_text: str | None = None  # the ``json:`` value, already dumped
    error: ErrorAnswer | None = None
    drop: bool = False
    delay: float = 0.0

    @property
    def kind(self) -> str:
        if self.calls:
            return "calls"
        if self.json_text is not None:
            return "json"
        if self.error is not None:
            return "error"
        if self.drop:
            return "drop"
        return "text"


@dataclass(frozen=True)
class Expectation:
    """What a request must look like (``expect``); a request that does not is a test failure.

    Tool names are ``write_file`` (any namespace) or ``storage.write_file``; texts are plain
    substrings, not regular expressions, so a failure can show the closest text found.
    """

    tools: tuple[str, ...] | None = None  # each must be offered
    tools_exactly: tuple[str, ...] | None = None  # these and no others
    instructions: str | None = None  # contained in the instructions
    user: str | None = None  # contained in the latest user message
    model: str | None = None  # the model, exactly


@dataclass(frozen=True)
class Rule:
    """One rule. It answers with ``answer``, or with what ``respond`` (a Python function of the
    ``LLMRequest``) returns; a rule with neither only checks ``expect`` and lets the request
    go on to the next rules."""

    index: int
    match: Match
    answer: Answer | None
    times: int | None = None  # None: always
    name: str | None = None
    expect: Expectation | None = None
    respond: Callable[..., Any] | None = field(default=None, compare=False)

    @property
    def label(self) -> str:
        """How transcripts and messages name the rule: its name, else ``rules[i]``."""
        return self.name if self.name is not None else f"rules[{self.index}]"

    @property
    def slug(self) -> str:
        """A call-id-safe form of the label."""
        if self.name is None:
            return f"rule{self.index}"
        return re.sub(r"[^A-Za-z0-9_-]+", "-", self.name).strip("-") or f"rule{self.index}"


@dataclass(frozen=True)
class Script:
    rules: tuple[Rule, ...] = ()
    fallback: Answer | None = None
    source: str = "<script>"
    description: str | None = None


# ---------------------------------------------------------------- the JSON schema

_CALL = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "arguments": {"type": "object"},
        "namespace": {"type": "string", "minLength": 1},
        "call_id": {"type": "string", "minLength": 1},
    },
}
_ERROR = {
    "type": "object",
    "additionalProperties": False,
    "required": ["message"],
    "properties": {
        "message": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "retry_after": {"type": "number", "minimum": 0},
        "type": {"type": "string"},
        "code": {"type": "string"},
        "websocket": {"type": "boolean"},
    },
}
_ANSWER = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "text": {"type": "string"},
        "calls": {"type": "array", "minItems": 1, "items": _CALL},
        "json": {},
        "error": _ERROR,
        "drop": {"type": "boolean"},
        "delay": {"type": "number", "minimum": 0},
    },
}
_MATCH = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "user": {"type": "string"},
        "instructions": {"type": "string"},
        "model": {"type": "string"},
        "provider": {"type": "string"},
        "api": {"type": "string"},
        "turn": {"type": "integer", "minimum": 1},
        # A boolean, or an object whose keys are checked only when it is one.
        "tool_result": {
            "type": ["boolean", "object"],
            "additionalProperties": False,
            "properties": {
                "call_id": {"type": "string"},
                "output": {"type": "string"},
                "name": {"type": "string"},
            },
        },
    },
}
_NAMES = {"type": "array", "items": {"type": "string", "minLength": 1}}
_EXPECT = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {
        "tools": _NAMES,
        "tools_exactly": _NAMES,
        "instructions": {"type": "string", "minLength": 1},
        "user": {"type": "string", "minLength": 1},
        "model": {"type": "string", "minLength": 1},
    },
}
_RULE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "match": _MATCH,
        "expect": _EXPECT,
        "answer": _ANSWER,
        "times": {"type": ["string", "integer"]},
    },
}
SCRIPT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "description": {"type": "string"},
        "rules": {"type": "array", "items": _RULE},
        "fallback": _ANSWER,
    },
}
_VALIDATOR = jsonschema.Draft202012Validator(SCRIPT_SCHEMA)
_RULE_VALIDATOR = jsonschema.Draft202012Validator(_RULE)
_ANSWER_VALIDATOR = jsonschema.Draft202012Validator(_ANSWER)

_TYPE_WORDS = {
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "null",
}
_ANSWER_KINDS = ("text", "calls", "json", "error", "drop")


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _place(path: Any) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "top level"


def _join(path: Any, *more: Any) -> str:
    return _place([*path, *more])


def _schema_problem(error: jsonschema.ValidationError) -> tuple[str, str]:
    place = _place(error.absolute_path)
    kind, value, instance = error.validator, error.validator_value, error.instance
    if kind == "type":
        types = [value] if isinstance(value, str) else list(value)
        expected = " or ".join(_TYPE_WORDS.get(t, t) for t in types)
        return place, f"expected {expected}, got {_describe(instance)}"
    if kind == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        extra = sorted(k for k in instance if k not in allowed)
        return place, f"unknown key {extra[0]!r} (allowed: {', '.join(allowed)})"
    if kind == "required":
        missing = [k for k in value if k not in instance]
        return place, f"missing required key {missing[0]!r}"
    if kind == "minItems":
        return place, "must not be an empty list"
    if kind == "minProperties":
        return place, "must not be empty"
    if kind == "minLength":
        return place, "must not be empty"
    if kind == "minimum":
        return place, f"must be at least {value}, got {instance!r}"
    if kind == "maximum":
        return place, f"must be at most {value}, got {instance!r}"
    return place, error.message  # not reachable with the schema above


def _path_key(error: jsonschema.ValidationError) -> tuple[tuple[int, Any], ...]:
    return tuple((0, p) if isinstance(p, int) else (1, str(p)) for p in error.absolute_path)


# ---------------------------------------------------------------- building the typed script


class _Builder:
    """Turns schema-valid data into a ``Script``, collecting the semantic problems."""

    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []

    def fail(self, place: str, what: str) -> None:
        self.problems.append((place, what))

    def regex(self, pattern: str, place: str, *, flags: int = 0) -> re.Pattern[str] | None:
        try:
            return re.compile(pattern, flags)
        except re.error as error:
            self.fail(place, f"invalid regular expression {pattern!r}: {error}")
            return None

    def match(self, data: Mapping[str, Any], path: list[Any]) -> Match:
        def rx(key: str) -> re.Pattern[str] | None:
            return self.regex(data[key], _join(path, key)) if key in data else None

        tool_result: bool | ToolResultMatch | None = None
        raw = data.get("tool_result")
        if isinstance(raw, bool):
            tool_result = raw
        elif isinstance(raw, Mapping):
            if not raw:
                self.fail(_join(path, "tool_result"), "give at least one of call_id, output, name")
            output = raw.get("output")
            tool_result = ToolResultMatch(
                call_id=raw.get("call_id"),
                output=self.regex(output, _join(path, "tool_result", "output"))
                if output is not None
                else None,
                name=raw.get("name"),
            )
        turn = data.get("turn")
        return Match(
            user=rx("user"),
            instructions=rx("instructions"),
            tool_result=tool_result,
            model=rx("model"),
            turn=int(turn) if turn is not None else None,
            provider=rx("provider"),
            api=rx("api"),
        )

    def answer(self, data: Mapping[str, Any], path: list[Any]) -> Answer:
        # ``drop: false`` is not an answer; it is reported below.
        kinds = [k for k in _ANSWER_KINDS if k in data and not (k == "drop" and data[k] is False)]
        if not kinds:
            self.fail(_place(path), "give one of text, calls, json, error, drop")
        elif len(kinds) > 1:
            self.fail(
                _place(path),
                f"give only one of text, calls, json, error, drop (got {' and '.join(kinds)})",
            )
        if data.get("drop") is False:
            self.fail(_join(path, "drop"), "must be true when given")
        calls = tuple(self.call(c, [*path, "calls", i]) for i, c in enumerate(data.get("calls", ())))
        seen: set[str] = set()
        for i, call in enumerate(calls):
            if call.call_id is not None and call.call_id in seen:
                self.fail(_join(path, "calls", i, "call_id"), f"duplicate call_id {call.call_id!r}")
            if call.call_id is not None:
                seen.add(call.call_id)
        error = data.get("error")
        return Answer(
            text=data.get("text"),
            calls=calls,
            json_text=json.dumps(data["json"], ensure_ascii=False) if "json" in data else None,
            error=ErrorAnswer(
                message=error["message"],
                status=error.get("status", 500),
                retry_after=error.get("retry_after"),
                type=error.get("type"),
                code=error.get("code"),
                websocket=error.get("websocket", False),
            )
            if error is not None
            else None,
            drop=bool(data.get("drop", False)),
            delay=float(data.get("delay", 0)),
        )

    def call(self, data: Mapping[str, Any], path: list[Any]) -> Call:
        return Call(
            name=data["name"],
            arguments=dict(data.get("arguments", {})),
            namespace=data.get("namespace"),
            call_id=data.get("call_id"),
        )

    def times(self, value: Any, place: str) -> int | None:
        if value is None or value == "always":
            return None
        if value == "once":
            return 1
        if isinstance(value, int) and value >= 1:
            return value
        self.fail(place, f"must be 'once', 'always' or a whole number >= 1, got {_describe(value)}")
        return None

    def expect(self, data: Mapping[str, Any]) -> Expectation:
        def names(key: str) -> tuple[str, ...] | None:
            return tuple(data[key]) if key in data else None

        return Expectation(
            tools=names("tools"),
            tools_exactly=names("tools_exactly"),
            instructions=data.get("instructions"),
            user=data.get("user"),
            model=data.get("model"),
        )

    def rule(self, data: Mapping[str, Any], index: int, *, responds: bool = False) -> Rule:
        """One YAML-form rule (already schema-valid); ``responds``: a Python function answers."""
        path: list[Any] = ["rules", index]
        if responds and "answer" in data:
            self.fail(_place(path), "give an answer or a Python function, not both")
        if not responds and "answer" not in data and "expect" not in data:
            self.fail(_place(path), "give an answer, or an expect (a rule that only checks)")
        return Rule(
            index=index,
            name=data.get("name"),
            match=self.match(data.get("match", {}), [*path, "match"]),
            answer=self.answer(data["answer"], [*path, "answer"]) if "answer" in data else None,
            times=self.times(data.get("times"), _join(path, "times")),
            expect=self.expect(data["expect"]) if "expect" in data else None,
        )

    def check_names(self, rules: list[Rule]) -> None:
        names: dict[str, int] = {}
        for rule in rules:
            if rule.name is None:
                continue
            if rule.name in names:
                self.fail(
                    _join(["rules", rule.index], "name"),
                    f"duplicate rule name {rule.name!r} (also rules[{names[rule.name]}])",
                )
            names.setdefault(rule.name, rule.index)

    def rules(self, items: list[Any]) -> tuple[Rule, ...]:
        rules = [self.rule(data, i) for i, data in enumerate(items)]
        self.check_names(rules)
        return tuple(rules)


def parse_script(data: Any, source: str = "<script>") -> Script:
    """Validate already-loaded data (the YAML/JSON document) and build a ``Script``.

    Raises ``ScriptError`` naming ``source``, the place and the problem.
    """
    if not isinstance(data, Mapping):
        raise ScriptError(
            source,
            [
                (
                    "top level",
                    f"expected a mapping with 'rules' and/or 'fallback', got {_describe(data)}",
                )
            ],
        )
    errors = sorted(_VALIDATOR.iter_errors(data), key=_path_key)
    if errors:
        problems = list(dict.fromkeys(_schema_problem(e) for e in errors))
        raise ScriptError(source, problems)
    if not data.get("rules") and "fallback" not in data:
        raise ScriptError(source, [("top level", "the script needs at least one rule or a fallback")])
    builder = _Builder()
    rules = builder.rules(list(data.get("rules", [])))
    fallback = builder.answer(data["fallback"], ["fallback"]) if "fallback" in data else None
    if builder.problems:
        raise ScriptError(source, builder.problems)
    return Script(rules=rules, fallback=fallback, source=source, description=data.get("description"))


def _schema_errors(
    validator: jsonschema.Validator, data: Any, prefix: list[Any]
) -> list[tuple[str, str]]:
    errors = sorted(validator.iter_errors(data), key=_path_key)
    problems = []
    for error in errors:
        place, what = _schema_problem(error)
        problems.append((_place([*prefix, *error.absolute_path]) if prefix else place, what))
    return list(dict.fromkeys(problems))


def build_rules(
    items: list[Rule | tuple[Mapping[str, Any], Callable[..., Any] | None]], source: str
) -> tuple[Rule, ...]:
    """Rules in order, from built ``Rule``s (they keep all but their place) and from YAML-form
    rules, each with the Python function that answers it (or ``None``); this is how
    ``python_rules.compose`` makes a script. ``ScriptError`` names ``source`` and ``rules[i]``."""
    problems: list[tuple[str, str]] = []
    for i, item in enumerate(items):
        if not isinstance(item, Rule):
            problems += _schema_errors(_RULE_VALIDATOR, item[0], ["rules", i])
    if problems:
        raise ScriptError(source, problems)
    builder = _Builder()
    rules = []
    for i, item in enumerate(items):
        if isinstance(item, Rule):
            rules.append(replace(item, index=i))
            continue
        data, respond = item
        rule = builder.rule(data, i, responds=respond is not None)
        rules.append(rule if respond is None else replace(rule, respond=respond))
    builder.check_names(rules)
    if builder.problems:
        raise ScriptError(source, builder.problems)
    return tuple(rules)


def parse_answer(data: Any, source: str) -> Answer:
    """One answer in YAML form (``{"text": ...}``, ``{"calls": [...]}``...)."""
    if not isinstance(data, Mapping):
        raise ScriptError(source, [("answer", f"expected a mapping, got {_describe(data)}")])
    problems = _schema_errors(_ANSWER_VALIDATOR, data, ["answer"])
    if problems:
        raise ScriptError(source, problems)
    builder = _Builder()
    answer = builder.answer(data, ["answer"])
    if builder.problems:
        raise ScriptError(source, builder.problems)
    return answer


def loads_script(text: str, source: str = "<script>") -> Script:
    """Parse YAML (or JSON, which is read the same way) script text."""
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        place = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "top level"
        raise ScriptError(source, [(place, f"invalid YAML: {error.problem or error}")]) from None
    except yaml.YAMLError as error:
        raise ScriptError(source, [("top level", f"invalid YAML: {error}")]) from None
    return parse_script(data, source)


def load_script(path: str | os.PathLike[str]) -> Script:
    """Read and validate a script file; errors name the file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise ScriptError(str(file), [("file", f"cannot read it: {error.strerror or error}")]) from None
    return loads_script(text, str(file))


@functools.cache
def load_demo_script() -> Script:
    """The built-in demo (``demo.yaml`` beside this module): saves a poem about AI to poem.txt.

    Parsed once per process (a ``Script`` is immutable): every new emulator starts with it."""
    text = resources.files(__package__).joinpath("demo.yaml").read_text(encoding="utf-8")
    return loads_script(text, "demo.yaml")
