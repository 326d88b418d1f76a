"""The compatibility suite: the real MeshAgent SDK and CLI, of whatever version is installed,
against a fresh emulator per test, or against a real MeshAgent room (``LOCALMESH_TARGET=real``).

Markers:
    sdk(min="0.54.0", reason="...")  the test needs that SDK version; on an older one it is
                                     skipped with the reason, a skip CI accepts (by design)
    localmesh_only(reason="...")     the test needs localmesh itself (faults, the scripted LLM,
                                     server state); it is left out of a run against a real room
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from compat_helpers import sdk_client, sdk_token
from meshagent.api import RoomClient
from meshagent.api.version import __version__ as SDK_VERSION_TEXT
from packaging.version import Version
from targets import NO_CREDENTIALS, TARGET_VARIABLE, Credentials, RealService, selected_target

SDK_VERSION = Version(SDK_VERSION_TEXT)
HERE = Path(__file__).parent
# Set by the nox matrix: the SDK version its session installed, checked before anything runs.
EXPECTED_SDK_VARIABLE = "LOCALMESH_EXPECT_SDK"

_TARGET = pytest.StashKey[str]()
_CREDENTIALS = pytest.StashKey["Credentials | None"]()
_LEFT_OUT = pytest.StashKey[dict[str, list[str]]]()


def pytest_configure(config: pytest.Config) -> None:
    expected = os.environ.get(EXPECTED_SDK_VARIABLE)
    if expected and Version(expected) != SDK_VERSION:
        raise pytest.UsageError(
            f"{EXPECTED_SDK_VARIABLE}={expected}, but meshagent-api {SDK_VERSION_TEXT} is installed")
    try:
        config.stash[_TARGET] = selected_target()
    except ValueError as error:
        raise pytest.UsageError(str(error)) from None
    # Read once, before any test's environment clean-up.
    config.stash[_CREDENTIALS] = Credentials.from_environment() if config.stash[_TARGET] == "real" else None
    config.stash[_LEFT_OUT] = {}


def pytest_report_header(config: pytest.Config) -> str:
    target = config.stash[_TARGET]
    credentials = config.stash[_CREDENTIALS]
    where = "a localmesh emulator per test"
    if target == "real" and credentials is None:
        where = "a real MeshAgent project, but no credentials are set"
    elif target == "real":
        where = f"a real MeshAgent project at {credentials.api_url}"
    return f"compatibility suite: MeshAgent SDK {SDK_VERSION_TEXT}, target: {where}"


def _is_compat(item: pytest.Item) -> bool:
    return HERE in Path(str(item.path)).parents


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    real = config.stash[_TARGET] == "real"
    left_out = config.stash[_LEFT_OUT]
    kept: list[pytest.Item] = []
    deselected: list[pytest.Item] = []
    for item in items:
        if not _is_compat(item):
            kept.append(item)
            continue
        if real and (marker := item.get_closest_marker("localmesh_only")) is not None:
            left_out.setdefault(str(marker.kwargs.get("reason", "localmesh only")), []).append(item.nodeid)
            deselected.append(item)
            continue
        if (marker := item.get_closest_marker("sdk")) is not None:
            needed = Version(marker.kwargs["min"])
            if SDK_VERSION < needed:
                item.add_marker(pytest.mark.skip(reason=(
                    f"needs MeshAgent SDK >= {needed}, this run has {SDK_VERSION_TEXT}: "
                    f"{marker.kwargs['reason']}")))
                item.add_marker(pytest.mark.skip_by_design)
        if real and config.stash[_CREDENTIALS] is None:
            item.add_marker(pytest.mark.skip(reason=NO_CREDENTIALS))
        kept.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    left_out = config.stash.get(_LEFT_OUT, {})
    if not left_out:
        return
    total = sum(len(ids) for ids in left_out.values())
    terminalreporter.section("localmesh-only tests left out of the real run")
    terminalreporter.write_line(f"{TARGET_VARIABLE}=real: {total} test(s) need localmesh itself:")
    for reason, ids in sorted(left_out.items()):
        terminalreporter.write_line(f"  {len(ids):3d}  {reason}")


@pytest.fixture(autouse=True)
def _no_stray_meshagent_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK reads MESHAGENT_* and the LLM providers' variables in many places (SDK versions
    before 0.50 even sign with $MESHAGENT_API_KEY when given another secret): tests set what
    they need."""
    for name in list(os.environ):
        if name.startswith(("MESHAGENT_", "OPENAI_", "ANTHROPIC_", "GROK_", "XAI_")):
            monkeypatch.delenv(name)


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Any:
    """The test's target: a ``RoomServer`` (localmesh) or a ``RealService`` (a real project)."""
    credentials = request.config.stash[_CREDENTIALS]
    if request.config.stash[_TARGET] == "real":
        if credentials is None:
            pytest.skip(NO_CREDENTIALS)
        return RealService(credentials)
    localmesh_server = request.getfixturevalue("localmesh_server")
    # Empty long-polls answer quickly unless a test widens the window.
    localmesh_server.long_poll_window = 0.3
    return localmesh_server


@pytest.fixture
def token(server: Any) -> Callable[..., str]:
    def make(room: str = "r", **kwargs: Any) -> str:
        return sdk_token(server, room=room, **kwargs)

    return make


@pytest.fixture
def client(server: Any) -> Callable[..., RoomClient]:
    """``client(room, token=None, name=...)``: a real RoomClient with an SDK-made token."""

    def make(room: str = "r", token: str | None = None, name: str = "tester", **kwargs: Any):
        jwt_text = token or sdk_token(server, room=room, name=name)
        return sdk_client(server, room, jwt_text, **kwargs)

    return make


@pytest.fixture
def sdk_env(server: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The process environment the real SDK reads, pointing at this test's emulator."""
    # worker.stop() returns once the Worker's pending long-poll receive does: keep that short.
    server.long_poll_window = 0.3
    for name in ("OPENAI_API_KEY", "OPENAI_MODEL", "ANTHROPIC_API_KEY", "ANTHROPIC_MODEL",
                 "ANTHROPIC_MAX_TOKENS", "GROK_API_KEY", "XAI_API_KEY", "MESHAGENT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    env = server.env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env
