"""Reading the fenced code blocks of the docs, so that tests break when the docs change."""

from __future__ import annotations

import asyncio
import re
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def blocks(doc: str, language: str | None = None) -> list[str]:
    """The fenced code blocks of ``doc`` (a path relative to the repo), in order."""
    text = (ROOT / doc).read_text(encoding="utf-8")
    return [body for lang, body in FENCE.findall(text) if language is None or lang == language]


def block(doc: str, language: str, containing: str) -> str:
    """The one ``language`` block of ``doc`` that contains ``containing``."""
    found = [b for b in blocks(doc, language) if containing in b]
    assert len(found) == 1, f"{doc}: expected one {language} block with {containing!r}, got {len(found)}"
    return found[0]


async def run_async_snippet(code: str, namespace: dict[str, Any]) -> dict[str, Any]:
    """Run a snippet that uses top-level ``await``/``async with`` (as the docs write them)
    inside a coroutine; returns the snippet's local variables."""
    source = "async def __snippet__():\n" + textwrap.indent(code, "    ") + "\n    return locals()\n"
    exec(compile(source, "<doc snippet>", "exec"), namespace)  # noqa: S102 - the docs' own code
    return await asyncio.wait_for(namespace["__snippet__"](), timeout=30)


def shell_commands(doc: str, program: str) -> list[str]:
    """Every ``program …`` command of the doc's bash/sh blocks (continuations joined, comments
    cut), including ones inside ``$(…)``."""
    commands = []
    for body in blocks(doc, "bash") + blocks(doc, "sh"):
        for line in body.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s#\s.*$", "", line)
            for match in re.finditer(rf"(?:^|\$\(|\s)({re.escape(program)}\s[^)#]*)", line):
                commands.append(match.group(1).strip())
    return commands
