"""docs/sdk-versions.md and the README tell the truth about the version matrix: the versions
they list are the ones nox runs, CI's are the ones CI runs, the commands exist."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib

from doc_blocks import ROOT, block

VERSIONS_MD = "docs/sdk-versions.md"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
MATRIX = PYPROJECT["tool"]["localmesh"]["sdk-matrix"]
NEWEST = max(MATRIX["versions"], key=lambda v: tuple(map(int, v.split("."))))


def _tested_versions_table() -> dict[str, list[str]]:
    """version -> the cells of its row in the tested-versions table."""
    text = (ROOT / VERSIONS_MD).read_text(encoding="utf-8")
    section = text.split("## Tested versions", 1)[1].split("\n## ", 1)[0]
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in section.splitlines() if line.startswith("| ")]
    return {re.sub(r"[^0-9.]", "", row[0]): row for row in rows[1:] if re.search(r"\d", row[0])}


def test_the_table_lists_exactly_the_matrix_versions() -> None:
    assert sorted(_tested_versions_table()) == sorted(MATRIX["versions"])


def test_the_table_says_which_versions_ci_runs() -> None:
    for version, cells in _tested_versions_table().items():
        on_every_change = "every change" in " ".join(cells)
        assert on_every_change == (version in MATRIX["ci"] or version == NEWEST), (version, cells)


def test_the_newest_version_is_the_test_extras_pin() -> None:
    """CI runs the newest through the main suite: that is only true while the pins match."""
    test_extra = PYPROJECT["project"]["optional-dependencies"]["test"]
    pins = dict(req.split("==") for req in test_extra if req.startswith("meshagent-"))
    assert set(pins) == {"meshagent-api", "meshagent-cli", "meshagent-agents", "meshagent-openai",
                         "meshagent-anthropic", "meshagent-tools"}
    assert set(pins.values()) == {NEWEST}


def test_nox_has_one_session_per_version_and_ci_tags() -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "nox", "--noxfile", str(ROOT / "noxfile.py"), "--list", "--json"],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "NO_COLOR": "1"}, check=True,
    )
    sessions = {s["session"]: s for s in json.loads(listed.stdout)}
    assert set(sessions) == {f"compat({version})" for version in MATRIX["versions"]}
    tagged = {name for name, s in sessions.items() if "ci" in s.get("tags", [])}
    assert tagged == {f"compat({version})" for version in MATRIX["ci"]}


def test_ci_runs_the_suite_and_the_ci_sessions() -> None:
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert "bash scripts/test.sh -q" in lines
    assert "bash scripts/matrix.sh --ci" in lines


def test_the_readme_shows_the_matrix_and_the_parity_kit() -> None:
    matrix = block("README.md", "bash", "scripts/matrix.sh")
    assert "bash scripts/matrix.sh --ci" in matrix and 'compat(0.42.2)' in matrix
    parity = block("README.md", "bash", "scripts/parity.sh")
    assert "MESHAGENT_API_KEY" in parity and "--sdk" in parity
    for script in ("matrix.sh", "parity.sh"):
        path = ROOT / "scripts" / script
        assert path.is_file() and os.access(path, os.X_OK), path
    assert VERSIONS_MD in (ROOT / "README.md").read_text(encoding="utf-8")
