"""The abuse suite: bad input and load against a real server on 127.0.0.1, with figures."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from harness import FIGURES, write_report  # noqa: E402


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.write_sep("-", "localmesh abuse figures")
        terminalreporter.write_line(write_report())
