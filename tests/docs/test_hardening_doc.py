"""docs/hardening.md: its table of bounds is Limits, defaults included; its example runs."""

from __future__ import annotations

import dataclasses
import re

from doc_blocks import ROOT, block, run_async_snippet
from typer.testing import CliRunner

from localmesh.cli import app
from localmesh.emulator.limits import Limits

DOC = "docs/hardening.md"
MiB = 1024 * 1024


def _shown(value: object, name: str) -> str:
    """A default as the doc writes it: 16 MiB, 64 KiB, 10 s, 1,000."""
    if isinstance(value, float):
        return f"{value:g} s"
    assert isinstance(value, int)
    if name.endswith("_bytes") and value % (1024 * MiB) == 0:
        return f"{value // (1024 * MiB)} GiB"
    if name.endswith("_bytes") and value % MiB == 0:
        return f"{value // MiB} MiB"
    if name.endswith("_bytes") and value % 1024 == 0:
        return f"{value // 1024} KiB"
    return f"{value:,}"


def _table_rows() -> dict[str, str]:
    """name -> default cell; a row naming two bounds gives two defaults ("20 s, 20 s")."""
    text = (ROOT / DOC).read_text()
    section = text.split("| name | default | what it bounds |", 1)[1].split("\n\n", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines()[2:]:
        names, default, _ = [cell.strip() for cell in line.strip("|").split("|")]
        found = re.findall(r"`(\w+)`", names)
        parts = re.split(r",\s(?=\d)", default) if len(found) > 1 else [default]
        rows.update(zip(found, parts, strict=True))
    return rows


def test_every_bound_is_documented_with_its_default() -> None:
    rows = _table_rows()
    assert set(rows) == set(Limits.names())
    defaults = Limits()
    for field in dataclasses.fields(Limits):
        assert rows[field.name] == _shown(getattr(defaults, field.name), field.name), field.name


async def test_the_example_runs() -> None:
    await run_async_snippet(block(DOC, "python", "RoomServer(limits=Limits("), {})


def test_serve_takes_limits_and_refuses_unknown_ones() -> None:
    command = block(DOC, "bash", "localmesh serve --limit").split()
    assert command[:2] == ["localmesh", "serve"]
    result = CliRunner().invoke(app, ["serve", "--limit", "no_such_bound=3"])
    assert result.exit_code != 0 and "max_connections" in result.output
    assert Limits().with_text(["max_connections=200", "write_timeout=2.5"]) == Limits(
        max_connections=200, write_timeout=2.5)
