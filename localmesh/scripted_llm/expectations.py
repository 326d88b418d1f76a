"""Checking a request against a rule's ``expect``, and saying how it differs.

Each failed check is a few lines a person can act on: what was expected, what the request had,
and a diff (``-`` expected, ``+`` found) in the style of pytest's assertion messages.
"""

from __future__ import annotations

import difflib
import re

from .matching import LLMRequest
from .script import Expectation

_SHOWN = 300  # characters of a long text shown in a message


def unmet(expectation: Expectation, request: LLMRequest) -> list[str]:
    """The checks ``request`` fails, each described (an empty list: it meets them all)."""
    problems = []
    if expectation.model is not None and request.model != expectation.model:
        problems.append(f"model: expected {expectation.model!r}, the request asked for {request.model!r}")
    if expectation.tools is not None:
        missing = [name for name in expectation.tools if not request.offers(name)]
        if missing:
            lines = [f"tools: {_count(missing, 'expected tool')} not offered (- missing)"]
            lines += [f"  - {name}" for name in missing]
            lines.append(f"  offered: {', '.join(request.tool_names) or 'no tools'}")
            problems.append("\n".join(lines))
    if expectation.tools_exactly is not None:
        problem = _exact_tools(expectation.tools_exactly, request)
        if problem:
            problems.append(problem)
    if expectation.instructions is not None:
        problem = _containment("instructions", expectation.instructions, request.instructions)
        if problem:
            problems.append(problem)
    if expectation.user is not None:
        problem = _containment("user message", expectation.user, request.user_text)
        if problem:
            problems.append(problem)
    return problems


def _count(items: list[str], what: str) -> str:
    return f"1 {what} was" if len(items) == 1 else f"{len(items)} {what}s were"


def _exact_tools(expected: tuple[str, ...], request: LLMRequest) -> str | None:
    """A line per tool, in the expected order then the request's: two spaces for one both
    have, ``-`` for one expected and not offered, ``+`` for one offered and not expected."""
    lines = []
    matched: set[str] = set()
    for name in expected:
        tool = request.tool(name)
        if tool is None:
            lines.append(f"  - {name}")
        else:
            matched.add(tool.qualified_name)
            lines.append(f"    {name}")
    lines += [f"  + {tool.qualified_name}" for tool in request.tools
              if tool.qualified_name not in matched]
    if all(line.startswith("    ") for line in lines):
        return None
    head = ("tools: the offered tools are not the expected ones "
            "(- expected, not offered; + offered, not expected)")
    return "\n".join([head, *lines])


def _containment(what: str, expected: str, text: str | None) -> str | None:
    if text is None:
        return f"{what}: expected to contain {expected!r}, but the request has none"
    if expected in text:
        return None
    lines = [f"{what}: expected to contain {expected!r}",
             f"  {what}: {_shorten(text)!r}"]
    closest = _closest_part(expected, text)
    if closest:
        lines.append("  closest part (- expected, + found):")
        lines += [f"  {line.rstrip()}" for line in difflib.ndiff([expected], [closest]) if line.strip()]
    return "\n".join(lines)


def _closest_part(expected: str, text: str) -> str | None:
    """The run of whole words of ``text`` most like ``expected``, if one shares a word with it,
    is not much shorter, and is at least half alike (anything less would only confuse)."""
    wanted = _words(expected)
    spans = [match.span() for match in re.finditer(r"\S+", text)]
    best, best_ratio = None, 0.5
    matcher = difflib.SequenceMatcher(autojunk=False)
    matcher.set_seq2(expected)
    for first, (start, _) in enumerate(spans):
        for _, end in spans[first:]:
            if end - start > 2 * len(expected):
                break
            window = text[start:end]
            if len(window) < 0.75 * len(expected) or not wanted & _words(window):
                continue
            matcher.set_seq1(window)
            if matcher.quick_ratio() >= best_ratio and (ratio := matcher.ratio()) >= best_ratio:
                best, best_ratio = window, ratio
    return best


def _words(text: str) -> set[str]:
    return {word.lower() for word in re.findall(r"\w+", text)}


def _shorten(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _SHOWN else flat[: _SHOWN - 3] + "..."
