"""The error codes of the MeshAgent room API, as both ends of the wire read them.

An ``error`` content carries one of these in its ``code``. The emulator sends them and our
room client reads them, so they live here, next to ``worker.wire``, defined once.
"""

from __future__ import annotations

PERMISSION_DENIED = 1001
INVALID_REQUEST = 1002
NOT_FOUND = 1003
ALREADY_EXISTS = 1004
CONFLICT = 1005
OPERATION_FAILED = 1008
# The client's own code for a reply of the wrong shape (the SDK uses the same number).
UNEXPECTED_RESPONSE_TYPE = 1100
STORAGE_NOT_FOUND = 3001
STORAGE_RECURSIVE_REQUIRED = 3002
STORAGE_INVALID_PATH = 3004
STORAGE_ALREADY_EXISTS = 3005
QUEUE_NOT_FOUND = 5001
