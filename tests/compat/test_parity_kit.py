"""The parity kit itself: ``LOCALMESH_TARGET=real`` runs the compatibility suite against a
MeshAgent service known only by the MeshAgent environment variables.

No real credentials here, so the kit is checked against the next best thing: a separate
``localmesh serve`` process, which the suite reaches exactly as it would reach the real
service (API URL and API key, nothing else). That proves every test left in the real run is
target-agnostic (a test that touched localmesh's internals would fail with a message saying
it must be marked ``localmesh_only``), and that the localmesh-only ones are left out. These
tests start pytest in a subprocess; they are not ``compat`` tests, so the matrix skips them.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
from compat_helpers import ServedLocalmesh
from localmesh_serve import run
from targets import NO_CREDENTIALS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.localmesh_only(reason="runs the suite itself, against a localmesh process"),
]

REPO = Path(__file__).resolve().parents[2]
SUITE_TIMEOUT = 600.0  # the whole suite, on a loaded 2-core machine


async def _run_suite(env: dict[str, str], *paths: str) -> tuple[int, str]:
    return await run(env, sys.executable, "-m", "pytest", "-m", "compat", *(paths or ("tests/compat",)),
                     "-p", "no:cacheprovider", "-rs", "-q", cwd=REPO, timeout=SUITE_TIMEOUT)


def _clean_environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MESHAGENT_", "LOCALMESH_", "OPENAI_"))}
    env.pop("CI", None)
    return {**env, **extra}


def _counts(output: str) -> dict[str, int]:
    """The numbers of pytest's closing line: {"passed": 59, "deselected": 74, ...}."""
    closing = [line for line in output.splitlines() if re.search(r"\d+ (passed|skipped|failed)", line)]
    assert closing, output
    return {word: int(n) for n, word in re.findall(r"(\d+) ([a-z]+)", closing[-1])}


async def test_without_credentials_every_real_run_is_skipped_saying_why():
    code, output = await _run_suite(_clean_environment(LOCALMESH_TARGET="real"),
                                    "tests/compat/test_compat_queues.py")
    assert code == 0, output
    counts = _counts(output)
    assert counts.get("skipped", 0) > 0 and "passed" not in counts, output
    assert NO_CREDENTIALS.split(":")[0] in output  # the reason, shown with -rs
    # In CI a skip fails the run: a parity run that could not run never looks green.
    code, output = await _run_suite(_clean_environment(LOCALMESH_TARGET="real", CI="true"),
                                    "tests/compat/test_compat_queues.py")
    assert code != 0, output
    assert "in CI every test must run" in output


async def test_an_unknown_target_is_a_usage_error():
    code, output = await _run_suite(_clean_environment(LOCALMESH_TARGET="staging"),
                                    "tests/compat/test_compat_queues.py")
    assert code == pytest.ExitCode.USAGE_ERROR, output
    assert "LOCALMESH_TARGET must be one of localmesh, real" in output


async def test_the_real_run_passes_against_a_service_known_only_by_its_environment():
    async with ServedLocalmesh("--long-poll-window", "1") as served:
        env = _clean_environment(
            LOCALMESH_TARGET="real", CI="true",  # no skip may hide a test
            MESHAGENT_API_URL=served.exports["MESHAGENT_API_URL"],
            MESHAGENT_API_KEY=served.exports["MESHAGENT_API_KEY"],
        )
        code, output = await _run_suite(env)
    assert code == 0, output
    counts = _counts(output)
    assert counts.get("passed", 0) >= 50 and "skipped" not in counts and "failed" not in counts, output
    assert counts.get("deselected", 0) > 0  # the localmesh-only tests were left out...
    assert "localmesh-only tests left out of the real run" in output  # ...and said so
    assert "the scripted LLM" in output
