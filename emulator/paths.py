"""Storage paths: one canonical form, and a clear refusal for anything unsafe."""

from __future__ import annotations

from typing import Any

from localmesh.protocol.wire import is_valid_unicode

RESERVED_NAME = ".meshagent-directory"
RESERVED_PREFIX = ".meshagent-upload-"


class InvalidPath(ValueError):
    """A storage path that cannot be used; the message says why."""


def normalize_path(path: Any) -> str:
    """Canonical relative path: no leading ``./`` or outer slashes; ``""`` is the root.

    Refuses what the SDK refuses (backslashes, control characters, empty, ``.`` or ``..``
    segments, reserved names) so that no path can escape or alias another.
    """
    if not isinstance(path, str):
        raise InvalidPath(f"path must be a string, not {type(path).__name__}")
    if not is_valid_unicode(path):
        raise InvalidPath(f"path {path!r} is not valid Unicode (it holds a lone surrogate)")
    original = path
    while path.startswith("./"):
        path = path[2:]
    path = path.strip("/")
    if path == ".":
        return ""
    if any(c == "\\" or ord(c) < 32 or 127 <= ord(c) < 160 for c in path):
        raise InvalidPath(f"path {original!r} contains a backslash or a control character")
    if not path:
        return ""
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise InvalidPath(f"path {original!r} has an empty, '.' or '..' segment")
        if part == RESERVED_NAME or part.startswith(RESERVED_PREFIX):
            raise InvalidPath(f"path {original!r} uses a name reserved by MeshAgent")
    return path


def parent_of(path: str) -> str:
    return path.rpartition("/")[0]


def basename(path: str) -> str:
    return path.rpartition("/")[2]
