"""The exceptions of the Worker SDK (the room client's and the LLM adapters'), shared by every module."""

from __future__ import annotations


class RoomError(Exception):
    """The room refused a request, or a request could not complete.

    ``code`` is the room's error code when the server sent one (``localmesh.protocol.error_codes``),
    else ``None``.
    """

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code!r})"


class ConnectionLost(RoomError):
    """The connection dropped (or is still reconnecting) before the request completed.

    The request may be retried once the client has reconnected.
    """


class RoomClosed(RoomError):
    """The connection is closed for good: by us, by the server, or after a refused reconnect."""


class LLMError(Exception):
    """The LLM endpoint failed. ``status`` is the HTTP status (or the scripted one)."""

    RETRYABLE_STATUSES = frozenset({408, 409, 429})

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(message if status is None else f"LLM error {status}: {message}")
        self.message = message
        self.status = status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        # None = no response at all (connection error): worth another try.
        return self.status is None or self.status in self.RETRYABLE_STATUSES or self.status >= 500
