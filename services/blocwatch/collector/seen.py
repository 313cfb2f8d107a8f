"""The persistent seen-set and HTTP validators (SQLite under the collector's data directory).

An id is written here only after the broker acknowledged the item, so a crash can cause a
re-publish (at-least-once) but never a loss. The set is bounded twice: ids older than the TTL
are forgotten, and beyond `max_entries` the oldest go first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from blocwatch.collector.fetch import Validators
from blocwatch.core.storage import SqliteFile, open_database

__all__ = ["SeenStore"]

QUERY_CHUNK = 500
PRUNE_EVERY = 1000

SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, seen_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS seen_by_time ON seen (seen_at);
CREATE TABLE IF NOT EXISTS validators (
    feed TEXT PRIMARY KEY, url TEXT NOT NULL, etag TEXT, last_modified TEXT
);
"""


class SeenStore(SqliteFile):
    """Ids already published, and each feed's ETag / Last-Modified, kept across restarts."""

    def __init__(self, path: Path, ttl_s: float, max_entries: int) -> None:
        self.path = path
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._since_prune = 0
        self._db = open_database(
            path,
            SCHEMA,
            what="the seen-set database",
            fix="point BLOCWATCH_COLLECTOR_DATA_DIR at a writable directory",
        )

    def unseen(self, ids: Sequence[str]) -> list[str]:
        """The ids not published yet, in the given order."""
        known: set[str] = set()
        for start in range(0, len(ids), QUERY_CHUNK):
            chunk = ids[start : start + QUERY_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(f"SELECT id FROM seen WHERE id IN ({marks})", chunk)
            known.update(row[0] for row in rows)
        return [i for i in ids if i not in known]

    def mark(self, ids: Iterable[str], now: float) -> None:
        rows = [(i, now) for i in ids]
        if not rows:
            return
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO seen (id, seen_at) VALUES (?, ?)", rows)
        self._since_prune += len(rows)
        if self._since_prune >= PRUNE_EVERY:
            self.prune(now)

    def prune(self, now: float) -> None:
        """Forget ids past the TTL, then the oldest beyond the bound."""
        self._since_prune = 0
        with self._db:
            self._db.execute("DELETE FROM seen WHERE seen_at < ?", (now - self.ttl_s,))
            (count,) = self._db.execute("SELECT COUNT(*) FROM seen").fetchone()
            excess = count - self.max_entries
            if excess > 0:
                self._db.execute(
                    "DELETE FROM seen WHERE id IN "
                    "(SELECT id FROM seen ORDER BY seen_at ASC LIMIT ?)",
                    (excess,),
                )

    def __len__(self) -> int:
        (count,) = self._db.execute("SELECT COUNT(*) FROM seen").fetchone()
        return int(count)

    def validators(self, feed: str, url: str) -> Validators:
        """The feed's validators; none when the feed's URL changed since they were stored."""
        row = self._db.execute(
            "SELECT url, etag, last_modified FROM validators WHERE feed = ?", (feed,)
        ).fetchone()
        if row is None or row[0] != url:
            return Validators()
        return Validators(etag=row[1], last_modified=row[2])

    def save_validators(self, feed: str, url: str, validators: Validators) -> None:
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO validators (feed, url, etag, last_modified) "
                "VALUES (?, ?, ?, ?)",
                (feed, url, validators.etag, validators.last_modified),
            )
