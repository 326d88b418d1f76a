"""A participant token in the URL: accepted from old clients, never logged or recorded.

SDK clients up to 0.42.x send their token as ``?token=<jwt>`` on the room URL, with no
``Authorization`` header. ``UrlTokenMiddleware`` takes it out of the request's query string
before the app or uvicorn's access log sees the request: uvicorn logs the request from the
same scope dict the app gets, so removing it in place keeps it out of every access line. What
a log line could still carry is masked by ``RedactTokens``: at DEBUG level the ``websockets``
library logs the raw request line and every request header, ``Authorization`` included.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Receive, Scope, Send

TOKEN_PARAMETER = "token"
REDACTED = "[redacted]"
_SCOPE_KEY = "localmesh.url_token"
# token=<value> in a URL or request line, up to the next parameter, space or quote; and the
# credentials of an Authorization header line.
_TOKEN_IN_TEXT = re.compile(r"((?:^|[?&;\s])token=)[^&\s\"']+", re.IGNORECASE)
_AUTHORIZATION_IN_TEXT = re.compile(r"(authorization:\s*(?:bearer\s+|basic\s+)?)\S+", re.IGNORECASE)
# Loggers whose lines can hold a request URL: uvicorn's (the websockets protocol logs through
# "uvicorn.error") and the websockets library's own.
_URL_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "websockets", "websockets.server")


class UrlTokenMiddleware:
    """Moves a ``token`` query parameter out of every request's query string."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            query: bytes = scope.get("query_string", b"")
            if b"token" in query.lower():
                kept, token = _split_token(query)
                if token is not None:
                    # In place, not a copy: uvicorn's access log reads this same dict.
                    scope["query_string"] = kept
                    scope[_SCOPE_KEY] = token
        await self.app(scope, receive, send)


def url_token(scope: Scope) -> str | None:
    """The token ``UrlTokenMiddleware`` took from this request's URL, if any."""
    return scope.get(_SCOPE_KEY)


def _split_token(query: bytes) -> tuple[bytes, str | None]:
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    tokens = [value for name, value in pairs if name.lower() == TOKEN_PARAMETER]
    kept = [(name, value) for name, value in pairs if name.lower() != TOKEN_PARAMETER]
    return urlencode(kept).encode("latin-1"), (tokens[0] if tokens and tokens[0] else None)


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with each of ``secrets``, any ``token=`` value and any ``Authorization:``
    header's credentials replaced by ``[redacted]``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    text = _TOKEN_IN_TEXT.sub(rf"\g<1>{REDACTED}", text)
    return _AUTHORIZATION_IN_TEXT.sub(rf"\g<1>{REDACTED}", text)


class RedactTokens(logging.Filter):
    """Masks tokens (``token=`` values, ``Authorization`` headers) in a log record's message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


_FILTER = RedactTokens()


def install_log_redaction(extra: tuple[str, ...] = ()) -> None:
    """Add the redacting filter to the loggers that can print a request URL (idempotent)."""
    for name in (*_URL_LOGGERS, *extra):
        logging.getLogger(name).addFilter(_FILTER)

