"""The one exception models raise, and the room API's error codes it carries.

The codes are defined once, in ``worker.error_codes``, and re-exported here for the models.
"""

from __future__ import annotations

from localmesh.protocol.error_codes import (
    ALREADY_EXISTS,
    CONFLICT,
    INVALID_REQUEST,
    NOT_FOUND,
    OPERATION_FAILED,
    PERMISSION_DENIED,
    QUEUE_NOT_FOUND,
    STORAGE_ALREADY_EXISTS,
    STORAGE_INVALID_PATH,
    STORAGE_NOT_FOUND,
    STORAGE_RECURSIVE_REQUIRED,
)

__all__ = [
    "ALREADY_EXISTS",
    "CONFLICT",
    "INVALID_REQUEST",
    "NOT_FOUND",
    "OPERATION_FAILED",
    "PERMISSION_DENIED",
    "QUEUE_NOT_FOUND",
    "STORAGE_ALREADY_EXISTS",
    "STORAGE_INVALID_PATH",
    "STORAGE_NOT_FOUND",
    "STORAGE_RECURSIVE_REQUIRED",
    "RoomError",
]


class RoomError(Exception):
    """A request the room refuses: sent back to the caller as an ``error`` content."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
