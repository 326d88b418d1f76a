"""The data dir holds the project's API key secret: only its owner may read it.

The folder is made 0700 and the database file 0600 before SQLite opens it (SQLite gives
its -wal and -shm files the database file's mode). An existing data dir is tightened the
same way, so an old world-readable one is fixed on the next start.
"""

from __future__ import annotations

import os
from pathlib import Path

DB_NAME = "localmesh.db"


def private_database(data_dir: Path) -> Path:
    """Create (or tighten) ``data_dir`` as 0700 and its database as 0600; return the db path."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    database = data_dir / DB_NAME
    os.close(os.open(database, os.O_CREAT | os.O_WRONLY, 0o600))
    for path in (database, data_dir / f"{DB_NAME}-wal", data_dir / f"{DB_NAME}-shm"):
        if path.exists():
            os.chmod(path, 0o600)
    return database
