"""docs/cli-commands.md names every command of the real `meshagent` CLI 0.56.0, and the tests
it cites exist. The commands come from the CLI itself (click introspection, hidden ones too)."""

from __future__ import annotations

import re

import pytest
from doc_blocks import ROOT

pytestmark = pytest.mark.compat

DOC = ROOT / "docs" / "cli-commands.md"


def _real_commands() -> set[str]:
    from meshagent.cli.async_typer import _is_click_group, get_command
    from meshagent.cli.cli import app
    from typer import _click as click

    found: set[str] = set()

    def walk(command, path: str, context) -> None:
        if not _is_click_group(command):
            found.add(path)
            return
        for name in command.list_commands(context):
            sub = command.get_command(context, name)
            assert sub is not None, f"{path} {name} does not load"
            walk(sub, f"{path} {name}", click.Context(sub, parent=context, info_name=name))

    root = get_command(app, materialize_lazy=True)
    walk(root, "meshagent", click.Context(root))
    return found


def _rows() -> list[list[str]]:
    rows = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| `meshagent") and len(cells) == 3:
            rows.append(cells)
    return rows


def _documented_commands() -> set[str]:
    documented: set[str] = set()
    for first, _status, _test in _rows():
        command = re.match(r"`([^`]+)`", first).group(1)
        leaves = first.partition(" — ")[2]
        if not leaves:
            documented.add(command)
        for leaf in leaves.split(", "):
            if leaf:
                documented.add(f"{command} {leaf.removesuffix(' (hidden)')}")
    return documented


def test_every_real_cli_command_is_in_the_doc():
    real = _real_commands()
    assert len(real) > 300  # the walk really reached the lazily loaded groups
    documented = _documented_commands()
    assert not real - documented, f"commands missing from {DOC.name}: {sorted(real - documented)}"
    assert not documented - real, f"{DOC.name} lists commands the CLI has not: {sorted(documented - real)}"


def test_every_row_has_a_status_and_cited_tests_exist():
    for first, status, test in _rows():
        assert status[:1] in "✅🖥⚠❌❓", f"{first}: no status"
        if not test:
            continue
        path, _, name = test.strip("`").partition("::")
        source = (ROOT / path).read_text(encoding="utf-8")
        assert re.search(rf"def {re.escape(name)}\(", source), f"{first}: no test {test}"
        assert status.startswith("✅"), f"{first}: a tested row should say it works"
