"""Where the compatibility suite runs: a localmesh emulator, or a real MeshAgent room.

``LOCALMESH_TARGET=localmesh`` (the default): each test gets its own ``RoomServer``.
``LOCALMESH_TARGET=real``: each test gets a ``RealService``, built from the MeshAgent
environment variables a user already has for the real service (the parity kit). Tests use
the few things both offer: ``api_key``, ``project_id``, ``url``, ``room_url(room)``,
``env()`` and ``room_name(room)``. Anything else on a ``RealService`` fails with a message
saying the test must be marked ``localmesh_only``.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from typing import Any

from localmesh.protocol.tokens import ApiKey

TARGET_VARIABLE = "LOCALMESH_TARGET"
TARGETS = ("localmesh", "real")
DEFAULT_API_URL = "https://api.meshagent.com"  # the SDK's own default
# Real rooms keep what tests leave in them: every room a run uses starts with this.
ROOM_PREFIX = "localmesh-parity"

NO_CREDENTIALS = (
    "LOCALMESH_TARGET=real needs credentials for a real MeshAgent project: set MESHAGENT_API_KEY "
    "(a project API key, ma-...), and MESHAGENT_API_URL if the project is not on "
    f"{DEFAULT_API_URL}. Nothing ran: without them these tests are not run against anything else."
)


def selected_target() -> str:
    target = os.environ.get(TARGET_VARIABLE, "localmesh").strip().lower() or "localmesh"
    if target not in TARGETS:
        raise ValueError(f"{TARGET_VARIABLE} must be one of {', '.join(TARGETS)}, not {target!r}")
    return target


class LocalmeshOnly(AttributeError):
    """A test used a part of the emulator that a real MeshAgent room does not have."""


@dataclass(frozen=True)
class Credentials:
    """The MeshAgent environment variables of a real project, read once at start."""

    api_url: str
    api_key: str
    project_id: str
    room_url: str | None

    @classmethod
    def from_environment(cls, environ: dict[str, str] | os._Environ[str] = os.environ) -> Credentials | None:
        api_key = environ.get("MESHAGENT_API_KEY", "").strip()
        if not api_key:
            return None
        project_id = environ.get("MESHAGENT_PROJECT_ID", "").strip() or ApiKey.parse(api_key).project_id
        return cls(
            api_url=(environ.get("MESHAGENT_API_URL", "").strip() or DEFAULT_API_URL).rstrip("/"),
            api_key=api_key,
            project_id=project_id,
            room_url=environ.get("MESHAGENT_ROOM_URL", "").strip().rstrip("/") or None,
        )


@dataclass
class RealService:
    """A real MeshAgent project, as one test sees it: its rooms get names of their own, so
    a test starts with empty rooms and runs never meet each other's."""

    credentials: Credentials
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])

    @property
    def api_key(self) -> str:
        return self.credentials.api_key

    @property
    def project_id(self) -> str:
        return self.credentials.project_id

    @property
    def url(self) -> str:
        return self.credentials.api_url

    def room_name(self, room: str) -> str:
        return f"{ROOM_PREFIX}-{self.run_id}-{room}"

    def room_url(self, room: str) -> str:
        # As the SDK builds it (api/urls.py): MESHAGENT_ROOM_URL, else the API URL, http -> ws.
        base = self.credentials.room_url or self.credentials.api_url
        if base.startswith("http"):
            base = "ws" + base[len("http"):]
        return f"{base}/rooms/{self.room_name(room)}"

    def env(self) -> dict[str, str]:
        """What the real CLI needs to reach the project (tokens are minted from the key)."""
        env = {
            "MESHAGENT_API_URL": self.credentials.api_url,
            "MESHAGENT_API_KEY": self.credentials.api_key,
            "MESHAGENT_PROJECT_ID": self.credentials.project_id,
            "MESHAGENT_DISABLE_VERSION_CHECK": "1",
        }
        if self.credentials.room_url:
            env["MESHAGENT_ROOM_URL"] = self.credentials.room_url
        return env

    def __getattr__(self, name: str) -> Any:
        raise LocalmeshOnly(
            f"server.{name} exists only on localmesh, not on a real MeshAgent room: mark the test "
            "@pytest.mark.localmesh_only(reason=...) or keep that check behind on_localmesh(server)"
        )


def room_name(target: Any, room: str) -> str:
    """The name ``room`` has on ``target``: as given on localmesh, made unique on a real service."""
    return target.room_name(room) if isinstance(target, RealService) else room


def on_localmesh(target: Any) -> bool:
    """For checks of localmesh's own internals or wording inside a test that also runs for real."""
    return not isinstance(target, RealService)
