"""Error codes of the MeshAgent room API, and the one exception models raise."""

from __future__ import annotations

PERMISSION_DENIED = 1001
INVALID_REQUEST = 1002
NOT_FOUND = 1003
ALREADY_EXISTS = 1004
CONFLICT = 1005
OPERATION_FAILED = 1008
STORAGE_NOT_FOUND = 3001
STORAGE_RECURSIVE_REQUIRED = 3002
STORAGE_INVALID_PATH = 3004
STORAGE_ALREADY_EXISTS = 3005
QUEUE_NOT_FOUND = 5001


class RoomError(Exception):
    """A request the room refuses: sent back to the caller as an ``error`` content."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
