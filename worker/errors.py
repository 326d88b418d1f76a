"""The exceptions of the room client, shared by every worker module."""

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
