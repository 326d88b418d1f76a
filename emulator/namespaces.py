"""Room keys: how the emulator tells apart rooms of the same name in different projects.

As in MeshAgent, a room belongs to a project: two projects may each have a room ``"r"``
and never see each other's queues or files. Inside the emulator a room is known by its
*key*: the plain name for the main project (so a data dir reads the same as before
projects existed), ``"<namespace>/<name>"`` for any other project. A room name never
contains ``/`` (it is one segment of ``/rooms/{room}``), so keys of different projects
cannot collide. Clients only ever see the plain name.
"""

from __future__ import annotations

SEPARATOR = "/"
MAIN = ""  # the namespace of the main project


def check_room_name(room: str) -> str:
    if not isinstance(room, str) or not room or SEPARATOR in room:
        raise ValueError(f"a room name is a non-empty string without '/', not {room!r}")
    return room


def room_key(namespace: str, room: str) -> str:
    return f"{namespace}{SEPARATOR}{room}" if namespace else room


def room_name(key: str) -> str:
    return key.rpartition(SEPARATOR)[2]


def namespace_of(key: str) -> str:
    return key.rpartition(SEPARATOR)[0]


def in_namespace(namespace: str | None):
    """A filter on room keys: the rooms of ``namespace`` (``None``: every room)."""
    if namespace is None:
        return lambda key: True
    return lambda key: namespace_of(key) == namespace
