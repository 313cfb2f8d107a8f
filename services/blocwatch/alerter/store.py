"""The alerter's durable state: SQLite under the data directory.

One transaction per consumed batch holds the new window items, the notification records and the
outbox of deliveries, so that after a crash the alerter neither forgets a window nor re-decides a
notification it already made (Kafka offsets are committed only after that transaction).
Silences live here too: `blocwatch silence add` writes them, the running alerter re-reads them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from blocwatch.alerter.evaluation import Changes, NotifyRecord, Observation
from blocwatch.alerter.silences import Silence
from blocwatch.core.models import TaggedItem
from blocwatch.core.storage import SqliteFile, open_database

__all__ = ["Delivery", "OutboxEntry", "StateStore"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (id TEXT PRIMARY KEY, time REAL NOT NULL, payload TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS items_time ON items (time);
CREATE TABLE IF NOT EXISTS records (fingerprint TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS dyads (key TEXT PRIMARY KEY, last REAL NOT NULL, novel REAL NOT NULL);
CREATE TABLE IF NOT EXISTS arrivals (
    feed TEXT NOT NULL, minute INTEGER NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (feed, minute));
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, receiver TEXT NOT NULL, alert TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, next_at REAL NOT NULL, last_error TEXT NOT NULL DEFAULT '',
    origin REAL);
CREATE TABLE IF NOT EXISTS silences (
    id TEXT PRIMARY KEY, data TEXT NOT NULL, ends_at REAL NOT NULL);
"""


def _ts(when: datetime) -> float:
    return when.timestamp()


def _dt(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


@dataclass(frozen=True)
class Delivery:
    """A notification to hand to one receiver: the alert JSON and when its newest item arrived."""

    receiver: str
    alert: str
    origin: datetime | None = None


@dataclass(frozen=True)
class OutboxEntry:
    """One pending delivery of an alert (JSON) to one receiver."""

    id: int
    receiver: str
    alert: str
    attempts: int
    next_at: datetime
    last_error: str
    origin: datetime | None


class StateStore(SqliteFile):
    """SQLite file with every piece of alerter state; safe to open from several processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = open_database(
            path,
            SCHEMA,
            what="alerter state",
            fix="set BLOCWATCH_ALERTER_DATA_DIR to a writable directory",
            timeout=10,
            isolation_level=None,
        )

    # -- meta

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def delete_meta(self, key: str) -> None:
        self._db.execute("DELETE FROM meta WHERE key = ?", (key,))

    # -- window state

    def load_items(self, since: datetime) -> Iterator[Observation]:
        rows = self._db.execute(
            "SELECT time, payload FROM items WHERE time > ? ORDER BY time", (_ts(since),)
        )
        for time, payload in rows:
            data = payload.encode() if isinstance(payload, str) else payload
            yield Observation.of(TaggedItem.model_validate_json(data), _dt(time), data)

    def load_records(self) -> list[NotifyRecord]:
        rows = self._db.execute("SELECT data FROM records").fetchall()
        return [NotifyRecord.from_json(data) for (data,) in rows]

    def load_dyads(self) -> dict[str, tuple[datetime, datetime]]:
        rows = self._db.execute("SELECT key, last, novel FROM dyads").fetchall()
        return {key: (_dt(last), _dt(novel)) for key, last, novel in rows}

    def load_arrivals(self) -> dict[tuple[str, int], int]:
        rows = self._db.execute("SELECT feed, minute, n FROM arrivals").fetchall()
        return {(feed, minute): n for feed, minute, n in rows}

    def commit(self, changes: Changes, outbox: list[Delivery], now: datetime) -> None:
        """Persist one batch's changes and its deliveries atomically."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT OR IGNORE INTO items VALUES (?, ?, ?)",
                [(o.id, _ts(o.time), o.payload.decode()) for o in changes.items],
            )
            db.executemany(
                "INSERT OR REPLACE INTO records VALUES (?, ?)",
                [(fp, r.to_json()) for fp, r in changes.records.items()],
            )
            db.executemany(
                "DELETE FROM records WHERE fingerprint = ?",
                [(fp,) for fp in changes.dropped_records],
            )
            db.executemany(
                "INSERT OR REPLACE INTO dyads VALUES (?, ?, ?)",
                [(k, _ts(last), _ts(novel)) for k, (last, novel) in changes.dyads.items()],
            )
            db.executemany("DELETE FROM dyads WHERE key = ?", [(k,) for k in changes.dropped_dyads])
            db.executemany(
                "INSERT OR REPLACE INTO arrivals VALUES (?, ?, ?)",
                [(feed, minute, n) for (feed, minute), n in changes.arrivals.items()],
            )
            if changes.pruned_before is not None:
                cutoff = _ts(changes.pruned_before)
                db.execute("DELETE FROM items WHERE time <= ?", (cutoff,))
                db.execute("DELETE FROM arrivals WHERE minute < ?", (int(cutoff) // 60,))
            db.executemany(
                "INSERT INTO outbox (receiver, alert, attempts, next_at, origin) "
                "VALUES (?, ?, 0, ?, ?)",
                [
                    (d.receiver, d.alert, _ts(now), None if d.origin is None else _ts(d.origin))
                    for d in outbox
                ],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    # -- outbox

    def due(self, receiver: str, now: datetime, limit: int = 100) -> list[OutboxEntry]:
        rows = self._db.execute(
            "SELECT id, receiver, alert, attempts, next_at, last_error, origin FROM outbox "
            "WHERE receiver = ? AND next_at <= ? ORDER BY id LIMIT ?",
            (receiver, _ts(now), limit),
        ).fetchall()
        return [
            OutboxEntry(i, r, a, n, _dt(t), e, None if o is None else _dt(o))
            for i, r, a, n, t, e, o in rows
        ]

    def pending(self, receiver: str | None = None) -> int:
        if receiver is None:
            return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
        row = self._db.execute("SELECT COUNT(*) FROM outbox WHERE receiver = ?", (receiver,))
        return int(row.fetchone()[0])

    def receivers_pending(self) -> set[str]:
        rows = self._db.execute("SELECT DISTINCT receiver FROM outbox").fetchall()
        return {str(name) for (name,) in rows}

    def next_due(self, receiver: str) -> datetime | None:
        row = self._db.execute(
            "SELECT MIN(next_at) FROM outbox WHERE receiver = ?", (receiver,)
        ).fetchone()
        return None if row[0] is None else _dt(row[0])

    def retry_later(self, entry_id: int, attempts: int, next_at: datetime, error: str) -> None:
        self._db.execute(
            "UPDATE outbox SET attempts = ?, next_at = ?, last_error = ? WHERE id = ?",
            (attempts, _ts(next_at), error[:500], entry_id),
        )

    def done(self, entry_id: int) -> None:
        self._db.execute("DELETE FROM outbox WHERE id = ?", (entry_id,))

    # -- silences

    def add_silence(self, silence: Silence) -> Silence:
        if not silence.id:
            silence = silence.model_copy(update={"id": uuid.uuid4().hex[:12]})
        self._db.execute(
            "INSERT OR REPLACE INTO silences VALUES (?, ?, ?)",
            (silence.id, silence.model_dump_json(), _ts(silence.ends_at)),
        )
        return silence

    def silences(self) -> list[Silence]:
        rows = self._db.execute("SELECT data FROM silences ORDER BY ends_at").fetchall()
        return [Silence.model_validate_json(data) for (data,) in rows]

    def expire_silence(self, silence_id: str, now: datetime) -> bool:
        """End a silence now; False when no silence has that id."""
        for silence in self.silences():
            if silence.id == silence_id:
                ended = silence.model_copy(update={"ends_at": max(now, silence.starts_at)})
                self.add_silence(ended)
                return True
        return False
