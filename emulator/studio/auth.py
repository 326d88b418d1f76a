"""Who may use the Studio, and how a browser proves it.

Three ways in, all ending in the same session cookie:

- the project's API key, typed into the login form (or sent as ``Authorization: Bearer``
  by a script, which then needs no cookie);
- a one-time login link, ``/studio/login?code=...``: ``localmesh studio`` signs the code with
  the project key it reads from the data dir, so it needs no running server to mint one;
- the session cookie itself: a signed, expiring JWT, HttpOnly and SameSite=Strict.

A participant token is refused everywhere (403): it speaks for one participant of one room,
not for the project. Writes made with the cookie also need the session's CSRF token in a
header, and any write from another site is refused by its ``Origin``/``Sec-Fetch-Site``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import jwt

from ...protocol.tokens import ApiKey

LOGIN_CODE_TYPE = "localmesh-studio-login"
SESSION_TYPE = "localmesh-studio-session"
LOGIN_CODE_LIFETIME = timedelta(minutes=10)
SESSION_LIFETIME = timedelta(hours=12)
CSRF_HEADER = "x-localmesh-csrf"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})


class Refused(Exception):
    """A request the Studio turns away: ``status`` is 401 (who are you?) or 403 (not you)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Viewer:
    """Someone the Studio let in. ``session`` is None for a bearer API key (no cookie)."""

    key_id: str
    session: str | None


def _sign(key: ApiKey, claims: dict[str, Any], lifetime: timedelta) -> str:
    payload = {**claims, "kid": key.key_id, "exp": datetime.now(UTC) + lifetime}
    return jwt.encode(payload, key.secret, algorithm="HS256")


def mint_login_code(key: ApiKey, lifetime: timedelta = LOGIN_CODE_LIFETIME) -> str:
    """A code that logs one browser in, once, within ``lifetime``."""
    return _sign(key, {"typ": LOGIN_CODE_TYPE, "jti": secrets.token_urlsafe(16)}, lifetime)


def login_link(base_url: str, key: ApiKey) -> str:
    return f"{base_url.rstrip('/')}/studio/login?code={quote(mint_login_code(key))}"


def cookie_name(port: int | None) -> str:
    # Cookies ignore ports: two servers on 127.0.0.1 would otherwise log each other out.
    return f"localmesh_studio_{port}" if port else "localmesh_studio"


class LoginBook:
    """What a restart may forget: login codes already used and sessions logged out, each kept
    until it would have expired anyway. Code and session ids are random, so one book can
    serve every server of a process."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.used_codes: dict[str, float] = {}  # jti -> expiry
        self.logged_out: dict[str, float] = {}  # session id -> expiry

    def forget_expired(self) -> None:
        now = self._clock()
        for book in (self.used_codes, self.logged_out):
            for entry in [entry for entry, expiry in book.items() if expiry < now]:
                del book[entry]


class StudioAuth:
    """Checks credentials against one server's project keys (read through ``keys`` on each
    use, so keys added while the server runs count too), with ``book`` for what it must
    remember."""

    def __init__(self, keys: Callable[[], list[ApiKey]], book: LoginBook | None = None) -> None:
        self._keys = keys
        self._book = book if book is not None else LoginBook()

    # ------------------------------------------------------------ credentials

    def _key_by_id(self, key_id: Any) -> ApiKey | None:
        return next((key for key in self._keys() if key.key_id == key_id), None)

    def api_key(self, text: str) -> ApiKey | None:
        return next((key for key in self._keys() if hmac.compare_digest(key.text, text)), None)

    def _claims(self, token: str) -> dict[str, Any]:
        """The claims of a JWT signed by one of the project's keys, whatever it is for."""
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise Refused(401, "not a localmesh credential") from None
        key = self._key_by_id(unverified.get("kid"))
        if key is None:
            raise Refused(401, "signed by a key this server does not know (another data dir?)")
        try:
            return jwt.decode(token, key.secret, algorithms=["HS256"])
        except jwt.ExpiredSignatureError:
            raise Refused(401, "expired; log in again or ask `localmesh studio` for a new link") from None
        except jwt.PyJWTError as error:
            raise Refused(401, f"refused: {error}") from None

    @staticmethod
    def _not_for_studio(claims: dict[str, Any]) -> Refused:
        if any(isinstance(g, dict) and g.get("name") == "room" for g in claims.get("grants") or ()):
            return Refused(403, "a participant token cannot open the Studio; use the project's API key")
        return Refused(401, "not a Studio credential")

    def _verify(self, token: str, expected_type: str) -> dict[str, Any]:
        claims = self._claims(token)
        if claims.get("typ") != expected_type:
            raise self._not_for_studio(claims)
        return claims

    def log_in(self, text: str) -> str:
        """A session cookie value for what was typed into the login form: the project's API
        key (or a login code pasted from `localmesh studio --no-open`)."""
        text = text.strip()
        key = self.api_key(text)
        if key is not None:
            return self.new_session(key)
        try:
            claims = self._claims(text)
        except Refused:
            raise Refused(401, "that is not this server's API key (`localmesh env` prints it)") from None
        if claims.get("typ") == LOGIN_CODE_TYPE:
            return self.redeem(text)
        raise self._not_for_studio(claims)

    def redeem(self, code: str) -> str:
        """Turn a one-time login code into a session cookie value (once)."""
        claims = self._verify(code, LOGIN_CODE_TYPE)
        self._book.forget_expired()
        jti = str(claims.get("jti"))
        if jti in self._book.used_codes:
            raise Refused(401, "this login link was used already; ask `localmesh studio` for a new one")
        self._book.used_codes[jti] = float(claims["exp"])
        return self.new_session(self._key_by_id(claims["kid"]))  # type: ignore[arg-type]

    def new_session(self, key: ApiKey) -> str:
        return _sign(key, {"typ": SESSION_TYPE, "sid": secrets.token_urlsafe(16)}, SESSION_LIFETIME)

    def session(self, cookie: str) -> Viewer:
        claims = self._verify(cookie, SESSION_TYPE)
        sid = str(claims.get("sid"))
        if sid in self._book.logged_out:
            raise Refused(401, "logged out")
        return Viewer(key_id=str(claims["kid"]), session=sid)

    def log_out(self, cookie: str) -> None:
        try:
            claims = self._verify(cookie, SESSION_TYPE)
        except Refused:
            return
        self._book.forget_expired()
        self._book.logged_out[str(claims.get("sid"))] = float(claims["exp"])

    def csrf_token(self, viewer: Viewer) -> str:
        key = self._key_by_id(viewer.key_id)
        if viewer.session is None or key is None:
            return ""
        return hmac.new(key.secret.encode(), f"csrf:{viewer.session}".encode(), hashlib.sha256).hexdigest()

    # ------------------------------------------------------------ a request

    def viewer(self, authorization: str | None, cookie: str | None) -> Viewer:
        """Who makes the request: a bearer API key, else the session cookie; or ``Refused``."""
        if authorization:
            scheme, _, token = authorization.partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                raise Refused(401, "use 'Authorization: Bearer <project API key>'")
            key = self.api_key(token)
            if key is not None:
                return Viewer(key_id=key.key_id, session=None)
            if token.startswith("ma-"):
                raise Refused(401, "this API key does not belong to this server's project")
            raise self._not_for_studio(self._claims(token))
        if cookie:
            return self.session(cookie)
        raise Refused(401, "log in with the project's API key, or open the link `localmesh studio` prints")

    def check_write(self, viewer: Viewer, method: str, headers: Any, own_origin: str) -> None:
        """Refuse a write that comes from another site, or a cookie write without its token."""
        if method not in UNSAFE_METHODS:
            return
        check_same_origin(headers, own_origin)
        if viewer.session is not None:
            sent = headers.get(CSRF_HEADER) or ""
            if not hmac.compare_digest(sent, self.csrf_token(viewer)):
                raise Refused(403, f"missing or wrong {CSRF_HEADER} header (reload the page)")


def check_same_origin(headers: Any, own_origin: str) -> None:
    """Refuse a request a browser marked as coming from another site."""
    site = headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise Refused(403, f"a {site} request may not change anything here")
    origin = headers.get("origin")
    if origin is not None and origin.rstrip("/") != own_origin:
        raise Refused(403, f"a request from {origin} may not change anything here")


def check_host(host_header: str | None, bound_to_loopback: bool) -> None:
    """A server on 127.0.0.1 answers only to a loopback name: a page on another site cannot
    reach it by pointing its own domain at 127.0.0.1 (DNS rebinding)."""
    if not bound_to_loopback:
        return
    hostname = urlsplit(f"//{host_header or ''}").hostname or ""
    if hostname not in LOOPBACK_NAMES:
        raise Refused(403, f"this Studio answers on 127.0.0.1 or localhost, not {hostname!r}")
