"""Suite-wide rules.

In CI (``CI`` set), a skipped test fails the run: the compatibility tests against the
real MeshAgent SDK must really run there, never quietly skip. The one exception is a skip
by design: tests/compat/conftest.py skips a test that needs a newer SDK than the one a
matrix session installed (marker ``sdk``), and says why; those are listed, not failed.
"""

from __future__ import annotations

import os

import pytest

BY_DESIGN = "skip_by_design"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not os.environ.get("CI"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    skipped = reporter.stats.get("skipped", [])
    by_design = [report for report in skipped if BY_DESIGN in report.keywords]
    unexpected = [report for report in skipped if BY_DESIGN not in report.keywords]
    if skipped:
        reporter.ensure_newline()
    for report in by_design:
        reporter.write_line(f"CI: skipped by design: {report.nodeid}: {_reason(report)}", yellow=True)
    if unexpected and exitstatus == 0:
        reporter.write_line(
            f"CI: {len(unexpected)} test(s) were skipped; in CI every test must run.", red=True)
        for report in unexpected:
            reporter.write_line(f"  {report.nodeid}: {_reason(report)}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``real_room`` run only against a real MeshAgent room
    (``LOCALMESH_TARGET=real`` with its credentials); elsewhere they are deselected, not skipped."""
    if os.environ.get("LOCALMESH_TARGET") == "real":
        return
    kept = [item for item in items if item.get_closest_marker("real_room") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept
