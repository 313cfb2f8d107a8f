"""Local SQLite state files (the collector's seen-set, the alerter's state): one way to open them.

WAL lets a second process (a CLI reading alerter state, a restarted service) read while the
service writes; synchronous=NORMAL is durable across a process crash, which is what matters for
state that Kafka can rebuild anyway. Any failure to open or initialise the file — unwritable
directory, not a database, corrupt — is a ConfigError naming the file and the setting to fix.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from blocwatch.core.errors import ConfigError

__all__ = ["SqliteFile", "open_database"]


def open_database(
    path: Path, schema: str, *, what: str, fix: str, **options: Any
) -> sqlite3.Connection:
    """Create the directory, open `path`, switch to WAL and apply `schema` (idempotent DDL)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db: sqlite3.Connection = sqlite3.connect(path, **options)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(schema)
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(f"cannot open {what} {path}: {exc}", fix) from exc
    return db


class SqliteFile:
    """Base for a store that owns one connection (`self._db`) and closes it as a context manager."""

    _db: sqlite3.Connection

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
