"""API keys, participant tokens and the grants they carry.

Everything here is plain data and pure functions: verification returns a ``Participant``
or raises ``AuthError`` with a reason a person can act on. Nothing knows about HTTP.
"""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from .grants import AGENT_DEFAULT_SECTIONS, ApiScope, GrantError, parse_api_scope

# The MeshAgent SDK version localmesh speaks for (tokens carry it; the CLI asks for it).
SDK_VERSION = "0.56.0"
ROLES = ("user", "agent", "tool")


class AuthError(Exception):
    """A token or key was refused. ``str(error)`` says why."""


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value; ``None`` if there is none."""
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


# ---------------------------------------------------------------- API keys


def _uuid_to_key_part(value: str) -> str:
    raw = base64.urlsafe_b64encode(uuid.UUID(value).bytes).decode().rstrip("=")
    return raw.replace("-", ".")


def _key_part_to_uuid(part: str) -> str:
    raw = part.replace(".", "-")
    return str(uuid.UUID(bytes=base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))))


@dataclass(frozen=True)
class ApiKey:
    """A MeshAgent ``ma-<kid>-<project>-<secret>`` key, as the real CLI and SDK parse it."""

    key_id: str
    project_id: str
    secret: str

    @property
    def text(self) -> str:
        return f"ma-{_uuid_to_key_part(self.key_id)}-{_uuid_to_key_part(self.project_id)}-{self.secret}"

    @classmethod
    def generate(cls, project_id: str | None = None) -> ApiKey:
        return cls(
            key_id=str(uuid.uuid4()),
            project_id=project_id or str(uuid.uuid4()),
            secret=secrets.token_urlsafe(32),
        )

    @classmethod
    def parse(cls, text: str) -> ApiKey:
        if not text.startswith("ma-"):
            raise AuthError("an API key starts with 'ma-'")
        parts = text[3:].split("-", 2)
        if len(parts) != 3 or not parts[2]:
            raise AuthError("an API key has the form ma-<key id>-<project id>-<secret>")
        try:
            return cls(_key_part_to_uuid(parts[0]), _key_part_to_uuid(parts[1]), parts[2])
        except ValueError as error:
            raise AuthError(f"the API key's id parts are not valid: {error}") from None


# ---------------------------------------------------------------- grants


def full_api_scope() -> dict[str, Any]:
    """What ``ApiScope.agent_default()`` grants: every section with its defaults."""
    return {section: {} for section in AGENT_DEFAULT_SECTIONS}


# The grant names the SDK mints (ParticipantToken.add_*_grant); localmesh refuses others.
KNOWN_GRANTS = ("room", "role", "api", "agent", "site", "tunnel_ports")


# ---------------------------------------------------------------- participant tokens


@dataclass(frozen=True)
class Participant:
    """Who a verified token says is connecting, and what it may do."""

    name: str
    room: str
    role: str
    api: ApiScope
    project_id: str | None
    claims: dict[str, Any]
    key_id: str | None = None  # the local API key whose secret verified the token


def mint_token(
    key: ApiKey,
    *,
    room: str,
    name: str,
    role: str = "agent",
    api: dict[str, Any] | None = None,
    expires_in: timedelta | None = None,
    now: float | None = None,
) -> str:
    """A participant JWT shaped like ``ParticipantToken(...).to_jwt(api_key=...)`` makes.
    ``now`` (seconds since the epoch; default: the wall clock) is when ``expires_in`` counts from."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    payload: dict[str, Any] = {
        "name": name,
        "grants": [
            {"name": "room", "scope": room},
            {"name": "role", "scope": role},
            {"name": "api", "scope": full_api_scope() if api is None else api},
        ],
        "version": SDK_VERSION,
        "kid": key.key_id,
        "sub": key.project_id,
    }
    if expires_in is not None:
        start = datetime.now(UTC) if now is None else datetime.fromtimestamp(now, UTC)
        payload["exp"] = start + expires_in
    return jwt.encode(payload, key.secret, algorithm="HS256")


def token_expiry(claims: dict[str, Any]) -> float | None:
    """When a token's claims say it expires (``exp``, seconds since the epoch), if they do."""
    value = claims.get("exp")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class TokenVerifier:
    """Checks participant JWTs against the local keys.

    ``keys`` is a list, or a mapping of key id to key that the owner may change later
    (projects come and go on a running emulator): the verifier reads it on each call.
    ``now`` is the emulator's clock, so virtual time can expire tokens.
    """

    def __init__(
        self, keys: list[ApiKey] | Mapping[str, ApiKey], now: Callable[[], float] = time.time
    ) -> None:
        self._by_id = keys if isinstance(keys, Mapping) else {key.key_id: key for key in keys}
        self.now = now

    def _candidates(self, claims: dict[str, Any]) -> list[ApiKey]:
        key_id = claims.get("kid")
        if key_id is None:
            # Minted with a plain secret (to_jwt(token=...)): any local key's secret may have signed it.
            return list(self._by_id.values())
        key = self._by_id.get(str(key_id))
        if key is None:
            raise AuthError(f"token was signed with an unknown key id {key_id!r}")
        return [key]

    def verify(self, token: str) -> dict[str, Any]:
        """The verified claims of ``token``; raises ``AuthError`` saying why not."""
        return self.verify_key(token)[0]

    def verify_key(self, token: str) -> tuple[dict[str, Any], ApiKey]:
        """The verified claims of ``token`` and the key that verified them."""
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as error:
            raise AuthError(f"token is not a valid JWT: {error}") from None
        for key in self._candidates(unverified):
            try:
                claims = jwt.decode(token, key.secret, algorithms=["HS256"], options={
                    "verify_aud": False, "verify_exp": False, "verify_nbf": False})
            except jwt.InvalidSignatureError:
                continue
            except jwt.PyJWTError as error:
                raise AuthError(f"token was refused: {error}") from None
            return self._check_times(claims), key
        raise AuthError("token signature is not valid for any key of this project")

    def _check_times(self, claims: dict[str, Any]) -> dict[str, Any]:
        now = self.now()
        expires = token_expiry(claims)
        if expires is not None and now >= expires:
            raise AuthError("token has expired")
        not_before = claims.get("nbf")
        if isinstance(not_before, int | float) and now < not_before:
            raise AuthError("token is not valid yet (nbf is in the future)")
        return claims

    def participant(self, token: str, *, room: str) -> Participant:
        """Verify ``token`` for joining ``room``."""
        claims, key = self.verify_key(token)
        granted = parse_grants(claims)
        token_room = granted.get("room")
        if token_room is None:
            raise AuthError("token has no room grant")
        if token_room != room:
            raise AuthError(f"token is for room {token_room!r}, not {room!r}")
        api = granted.get("api")
        if api is None:
            raise AuthError("token has no api grant, so it may not call the room API")
        return Participant(
            name=claims["name"],
            room=room,
            role=granted.get("role") or "user",
            api=api,
            project_id=claims.get("sub"),
            claims=claims,
            key_id=key.key_id,
        )


def parse_grants(claims: dict[str, Any]) -> dict[str, Any]:
    """The grants of verified claims, by name, parsed as the SDK's ``ParticipantToken``
    parses them (``from_json``), refusing with ``AuthError`` what it would refuse and the
    few things localmesh refuses on top (docs/hardening.md): a grant name that is not a
    string or not one the SDK mints, a grant given twice, a room or role of the wrong type.
    """
    name = claims.get("name")
    if not isinstance(name, str) or not name.strip():
        raise AuthError("token has no participant name (the 'name' claim must be a non-empty string)")
    grants = claims.get("grants")
    if not isinstance(grants, list):
        raise AuthError("token has no grants (the 'grants' claim must be a list)")
    found: dict[str, Any] = {}
    for index, grant in enumerate(grants):
        where = f"grants[{index}]"
        if not isinstance(grant, dict) or "name" not in grant or "scope" not in grant:
            raise AuthError(f"{where} must be an object with 'name' and 'scope'")
        kind, scope = grant["name"], grant["scope"]
        if not isinstance(kind, str):
            raise AuthError(f"{where}: a grant name must be a string, not {type(kind).__name__}")
        if kind not in KNOWN_GRANTS:
            raise AuthError(f"{where}: unknown grant {kind!r} (the SDK mints {', '.join(KNOWN_GRANTS)})")
        if kind in found:
            raise AuthError(f"{where}: the {kind!r} grant is given more than once")
        if kind == "api":
            try:
                found[kind] = parse_api_scope(scope)
            except GrantError as error:
                raise AuthError(f"the api grant is not valid: {error}") from None
            continue
        if not isinstance(scope, str):
            raise AuthError(f"{where}: the {kind!r} grant's scope must be a string, not {scope!r}"[:200])
        if kind == "room" and not scope:
            raise AuthError(f"{where}: the room grant names no room")
        if kind == "role" and scope not in ROLES:
            raise AuthError(f"{where}: role must be one of {', '.join(ROLES)}, not {scope!r}")
        found[kind] = scope
    return found
