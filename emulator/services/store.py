"""The ``services`` table: one row per service, its spec as JSON, names unique per scope."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

import aiosqlite

PROJECT = ""  # the room column of a project-level service

SCHEMA = """
CREATE TABLE IF NOT EXISTS services (
    id TEXT PRIMARY KEY,
    room TEXT NOT NULL,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (room, name)
);
"""


class NameTaken(Exception):
    """Another service of the same scope already has this name."""


@dataclass(frozen=True)
class ServiceRow:
    id: str
    room: str  # PROJECT for a project service
    spec: dict[str, Any]

    @property
    def name(self) -> str:
        return self.spec["metadata"]["name"]


def _row(row: Any) -> ServiceRow:
    return ServiceRow(row[0], row[1], json.loads(row[2]))


class ServiceStore:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    @classmethod
    async def open(cls, db: aiosqlite.Connection) -> ServiceStore:
        await db.executescript(SCHEMA)
        return cls(db)

    async def list(self, room: str) -> list[ServiceRow]:
        rows = await self._db.execute_fetchall(
            "SELECT id, room, spec FROM services WHERE room = ? ORDER BY created_at, id", (room,))
        return [_row(row) for row in rows]

    async def all(self) -> list[ServiceRow]:
        rows = await self._db.execute_fetchall(
            "SELECT id, room, spec FROM services ORDER BY created_at, id")
        return [_row(row) for row in rows]

    async def get(self, room: str, service_id: str) -> ServiceRow | None:
        rows = await self._db.execute_fetchall(
            "SELECT id, room, spec FROM services WHERE room = ? AND id = ?", (room, service_id))
        return next((_row(row) for row in rows), None)

    async def by_name(self, room: str, name: str) -> ServiceRow | None:
        rows = await self._db.execute_fetchall(
            "SELECT id, room, spec FROM services WHERE room = ? AND name = ?", (room, name))
        return next((_row(row) for row in rows), None)

    async def insert(self, service_id: str, room: str, spec: dict[str, Any], now: str) -> None:
        try:
            await self._db.execute(
                "INSERT INTO services (id, room, name, spec, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (service_id, room, spec["metadata"]["name"], json.dumps(spec), now, now))
        except sqlite3.IntegrityError:
            raise NameTaken(spec["metadata"]["name"]) from None

    async def update(self, service_id: str, room: str, spec: dict[str, Any], now: str) -> bool:
        try:
            rows = await self._db.execute_fetchall(
                "UPDATE services SET name = ?, spec = ?, updated_at = ? WHERE room = ? AND id = ?"
                " RETURNING id",
                (spec["metadata"]["name"], json.dumps(spec), now, room, service_id))
        except sqlite3.IntegrityError:
            raise NameTaken(spec["metadata"]["name"]) from None
        return bool(list(rows))

    async def delete(self, room: str, service_id: str) -> bool:
        rows = await self._db.execute_fetchall(
            "DELETE FROM services WHERE room = ? AND id = ? RETURNING id", (room, service_id))
        return bool(list(rows))
