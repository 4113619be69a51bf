"""The durable store-and-forward queue (SQLite, WAL, ``synchronous=FULL``).

Life of a punch row: *pending* → *delivered* (with time) → pruned after
``retain_delivered_days``; or *dead* (a publish the broker refused for good), kept until a
technician re-sends it. Every punch gets the gateway-wide, gap-free ``seq`` in the same
transaction that inserts it, so a consumer that sees a gap knows something is missing.

Threads: one connection, guarded by a lock, shared by the runner threads (inserts), the
publisher (reads pending, marks delivered) and the health loop (figures). Other processes
(``gatewayctl``) open their own read-only connection (``Store(path, readonly=True)``); WAL
lets them read while the daemon writes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.errors import StoreError
from gateway.pipeline.driver import Clock, SystemClock
from gateway.pipeline.punch import Punch
from gateway.store.schema import DEAD, DELIVERED, PENDING, migrate

BUSY_TIMEOUT_MS = 5000


def iso_utc(dt: datetime) -> str:
    """``2026-11-23T00:59:13.204Z``: the timestamp form of every ``*_at`` field."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True, slots=True)
class Row:
    """A stored punch: its ``seq`` and the complete JSON record that goes on the wire."""

    seq: int
    event_id: str
    record: str


class Store:
    """SQLite store; every method is safe to call from any thread."""

    def __init__(
        self, path: str | Path, *, clock: Clock | None = None, readonly: bool = False
    ) -> None:
        self.path = Path(path)
        self.clock = clock or SystemClock()
        self.readonly = readonly
        self._lock = threading.RLock()
        self._unmarked: list[int] = []  # acked seqs whose mark failed (disk full): retried
        try:
            if readonly:
                uri = f"file:{self.path}?mode=ro"
                self._conn = sqlite3.connect(
                    uri, uri=True, isolation_level=None, check_same_thread=False
                )
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._conn = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False
                )
            self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if not readonly:
                self._conn.execute("PRAGMA journal_mode = WAL")
                # FULL: a commit survives a power cut (WAL is fsynced on every commit). NORMAL
                # could roll back the last commits, and a serial reader's punch has no second
                # copy anywhere (notes/store-and-forward.md §3.3).
                self._conn.execute("PRAGMA synchronous = FULL")
                migrate(self._conn)
        except sqlite3.Error as err:
            raise StoreError(f"cannot open store {self.path}: {err}") from err

    # -- lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self) -> _Txn:
        return _Txn(self)

    # -- ingest --------------------------------------------------------------------------
    def add(self, punches: Sequence[Punch]) -> int:
        """Commit punches durably; return how many were new (duplicates by event_id skipped).

        One transaction for the whole batch: all rows and the sequence counter move together.
        """
        if not punches:
            return 0
        now = self.clock.now()
        received_at = iso_utc(now)
        with self._write() as conn:
            (next_seq,) = conn.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()
            first = int(next_seq)
            unique = list({p.event_id: p for p in punches}.values())  # in-batch duplicates
            rows: list[tuple[int, str, str, str, str]] = []
            if not _existing(conn, [unique[0].event_id]):
                # Fast path (new punches, the usual case): no look-ups, one executemany.
                rows = _rows(unique, first, received_at)
                conn.execute("SAVEPOINT fresh")
                try:
                    conn.executemany(_INSERT, rows)
                    conn.execute("RELEASE fresh")
                except sqlite3.IntegrityError:  # some were stored already: take the slow path
                    conn.execute("ROLLBACK TO fresh")
                    conn.execute("RELEASE fresh")
                    rows = []
            if not rows:
                seen = _existing(conn, [p.event_id for p in unique])
                rows = _rows([p for p in unique if p.event_id not in seen], first, received_at)
                conn.executemany(_INSERT, rows)
            seq = first + len(rows)
            added = seq - first
            if added:
                conn.execute("UPDATE meta SET value=? WHERE key='next_seq'", (str(seq),))
                conn.execute(
                    "INSERT INTO daily(day, received) VALUES (?, ?) ON CONFLICT(day)"
                    " DO UPDATE SET received = received + excluded.received",
                    (now.astimezone(UTC).date().isoformat(), added),
                )
        return added

    def add_manual(self, punch: Punch) -> int:
        """Commit a technician's manual punch and its audit entry in one transaction."""
        added = self.add([punch])
        with self._write() as conn:
            conn.execute(
                "INSERT INTO manual_audit(event_id, terminal, user_id, punch_time, state,"
                " entered_by, reason, entered_at) VALUES (?,?,?,?,?,?,?,?)",
                (
                    punch.event_id,
                    punch.terminal,
                    punch.user_id,
                    punch.time.isoformat(timespec="seconds"),
                    punch.state,
                    punch.entered_by or "",
                    punch.reason or "",
                    iso_utc(self.clock.now()),
                ),
            )
        return added

    # -- drain ---------------------------------------------------------------------------
    def pending(self, after_seq: int = 0, limit: int = 50) -> list[Row]:
        """The oldest pending rows with ``seq > after_seq``, in ``seq`` order."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, event_id, record FROM punches WHERE status=0 AND seq>?"
                " ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ).fetchall()
        return [Row(*r) for r in rows]

    def rows(self, seqs: Iterable[int]) -> list[Row]:
        """The still-pending rows among ``seqs``, in ``seq`` order (for re-sends)."""
        ids = sorted(set(seqs))
        out: list[Row] = []
        with self._lock:
            for i in range(0, len(ids), 500):
                part = ids[i : i + 500]
                out += [
                    Row(*r)
                    for r in self._conn.execute(
                        "SELECT seq, event_id, record FROM punches WHERE status=0 AND seq IN"  # nosec B608 # noqa: S608 - only '?' placeholders are formatted in
                        f" ({','.join('?' * len(part))}) ORDER BY seq",
                        part,
                    )
                ]
        return out

    def mark_delivered(self, seqs: Iterable[int]) -> int:
        """Mark acked rows delivered. Never raises (issue 7): when the commit fails (disk
        full) the seqs are kept and retried with the next call; a row still pending is sent
        again after a reconnect, which is a duplicate, never a loss."""
        if self.readonly:
            raise StoreError("store opened read-only")
        with self._lock:
            ids, self._unmarked = self._unmarked + list(seqs), []
            if not ids:
                return 0
            try:
                return self._mark_delivered(ids)
            except StoreError as err:
                self._unmarked = ids[-100_000:]
                _log().warning("cannot mark punches delivered yet", count=len(ids), error=str(err))
                return 0

    def _mark_delivered(self, ids: list[int]) -> int:
        now = self.clock.now()
        with self._write() as conn:
            n = _update_many(
                conn,
                "UPDATE punches SET status=1, delivered_at=?, attempts=attempts+1"
                " WHERE status=0 AND seq IN ({})",
                [iso_utc(now)],
                ids,
            )
            if n:
                conn.execute(
                    "INSERT INTO daily(day, delivered) VALUES (?, ?) ON CONFLICT(day)"
                    " DO UPDATE SET delivered = delivered + excluded.delivered",
                    (now.astimezone(UTC).date().isoformat(), n),
                )
        return n

    def dead_letter(self, seqs: Iterable[int], reason: str) -> int:
        ids = list(seqs)
        if not ids:
            return 0
        try:
            with self._write() as conn:
                return _update_many(
                    conn,
                    "UPDATE punches SET status=2, dead_reason=?, attempts=attempts+1"
                    " WHERE status=0 AND seq IN ({})",
                    [reason],
                    ids,
                )
        except StoreError as err:  # issue 7: it stays pending and is refused again later
            _log().warning("cannot dead-letter punches yet", count=len(ids), error=str(err))
            return 0

    def requeue(self, *, since: datetime | None = None, dead: bool = False) -> int:
        """Make delivered (received since ``since``) or dead-lettered punches pending again."""
        with self._write() as conn:
            if dead:
                cur = conn.execute("UPDATE punches SET status=0, dead_reason=NULL WHERE status=2")
            else:
                cur = conn.execute(
                    "UPDATE punches SET status=0, delivered_at=NULL"
                    " WHERE status=1 AND received_at >= ?",
                    (iso_utc(since or datetime.min.replace(tzinfo=UTC)),),
                )
            return cur.rowcount

    def prune(self, retain_days: int) -> int:
        """Delete delivered punches older than ``retain_days`` (dead letters are kept)."""
        cutoff = iso_utc(self.clock.now() - timedelta(days=retain_days))
        with self._write() as conn:
            cur = conn.execute("DELETE FROM punches WHERE status=1 AND delivered_at < ?", (cutoff,))
            return cur.rowcount

    # -- figures -------------------------------------------------------------------------
    def figures(self) -> dict[str, Any]:
        """Queue figures, cheap enough for a 1 Hz health loop and a CLI in another process."""
        now = self.clock.now()
        with self._lock:
            c = self._conn
            (pending,) = c.execute("SELECT count(*) FROM punches WHERE status=0").fetchone()
            oldest = c.execute(
                "SELECT received_at FROM punches WHERE status=0 ORDER BY seq LIMIT 1"
            ).fetchone()
            (dead,) = c.execute("SELECT count(*) FROM punches WHERE status=2").fetchone()
            today = c.execute(
                "SELECT received, delivered FROM daily WHERE day=?",
                (now.astimezone(UTC).date().isoformat(),),
            ).fetchone()
            (next_seq,) = c.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()
        age = (now - parse_iso(oldest[0])).total_seconds() if oldest else None
        return {
            "pending": pending,
            "oldest_pending_age_s": None if age is None else max(0.0, round(age, 3)),
            "received_today": today[0] if today else 0,
            "delivered_today": today[1] if today else 0,
            "dead_lettered": dead,
            "last_seq": int(next_seq) - 1,
        }

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Read-only helper for the CLI (peek, export, audit)."""
        with self._lock:
            return list(self._conn.execute(sql, params).fetchall())

    def integrity_check(self, quick: bool = False) -> list[str]:
        """``['ok']`` when healthy, else SQLite's list of problems."""
        pragma = "quick_check" if quick else "integrity_check"
        with self._lock:
            return [r[0] for r in self._conn.execute(f"PRAGMA {pragma}").fetchall()]

    def backup_to(self, dest: str | Path) -> None:
        """A consistent online copy (SQLite backup API), even while the daemon writes."""
        target = sqlite3.connect(dest)
        try:
            with self._lock:
                self._conn.backup(target)
        finally:
            target.close()


class _Txn:
    """``with store._write() as conn``: lock + BEGIN IMMEDIATE + COMMIT/ROLLBACK."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def __enter__(self) -> sqlite3.Connection:
        if self.store.readonly:
            raise StoreError("store opened read-only")
        self.store._lock.acquire()
        try:
            self.store._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as err:
            self.store._lock.release()
            raise StoreError(f"store write failed: {err}") from err
        return self.store._conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        conn = self.store._conn
        try:
            if exc_type is None:
                conn.execute("COMMIT")
            else:
                conn.execute("ROLLBACK")
        except sqlite3.Error as err:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(f"store commit failed: {err}") from err
        finally:
            self.store._lock.release()
        if isinstance(exc, sqlite3.Error):
            raise StoreError(f"store write failed: {exc}") from exc


def _update_many(
    conn: sqlite3.Connection, sql: str, head: list[Any], ids: list[int], chunk: int = 500
) -> int:
    n = 0
    for i in range(0, len(ids), chunk):
        part = ids[i : i + chunk]
        cur = conn.execute(sql.format(",".join("?" * len(part))), [*head, *part])
        n += cur.rowcount
    return n


def _log() -> Any:
    """structlog, imported only when there is something to say: ``gatewayctl status`` opens
    the store read-only and must not pay structlog's import (0.15 s here, more on a Pi 3)."""
    import structlog

    return structlog.get_logger(__name__)


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)  # built once: cheaper
_INSERT = "INSERT INTO punches(seq, event_id, terminal, record, received_at) VALUES (?, ?, ?, ?, ?)"


def _rows(
    punches: Sequence[Punch], first: int, received_at: str
) -> list[tuple[int, str, str, str, str]]:
    """Rows for ``_INSERT`` with consecutive seqs from ``first``; the record is the wire JSON."""
    return [
        (seq, p.event_id, p.terminal, p.to_json(seq, received_at), received_at)
        for seq, p in enumerate(punches, first)
    ]


def _dumps(obj: Any) -> str:
    return _ENCODER.encode(obj)


def _existing(conn: sqlite3.Connection, event_ids: list[str], chunk: int = 500) -> set[str]:
    """Which of ``event_ids`` are already stored (one indexed query per 500 ids)."""
    found: set[str] = set()
    for i in range(0, len(event_ids), chunk):
        part = event_ids[i : i + chunk]
        marks = ",".join("?" * len(part))
        sql = f"SELECT event_id FROM punches WHERE event_id IN ({marks})"  # nosec B608 # noqa: S608 - '?' only
        found.update(r[0] for r in conn.execute(sql, part))
    return found


__all__ = ["DEAD", "DELIVERED", "PENDING", "Row", "Store", "iso_utc", "parse_iso"]
