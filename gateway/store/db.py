"""The durable store-and-forward queue (SQLite, WAL, ``synchronous=FULL``).

Life of a punch row: *pending* → *delivered* (with time) → pruned after
``retain_delivered_days``; or *dead* (a publish the broker refused for good), kept until a
technician re-sends it. Every punch gets the gateway-wide, gap-free ``seq`` in the same
transaction that inserts it, so a consumer that sees a gap knows something is missing.

Threads: one writer connection behind a lock (the runners' inserts, the publisher's marks,
manual punches) and one read-only connection behind its own lock (the publisher's reads of
the backlog, the 1 Hz health figures, the control socket's queries): in WAL mode a reader
never waits behind a 5 000-row insert (issue 13). Backups and pruning open connections of
their own (``backup_to``, :mod:`gateway.store.tombstones`). Other processes
(``gatewayctl``) open ``Store(path, readonly=True)``: one read-only connection.

Figures are O(1) or O(log n) in the store's size: the pending and dead-letter counts are
kept with the rows in the same transaction (schema v3), the oldest pending row is
the first entry of a partial index, and today's counts live in the ``daily`` table.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.errors import StoreError
from gateway.pipeline.driver import Clock, SystemClock
from gateway.pipeline.punch import Punch
from gateway.store import tombstones
from gateway.store.connect import BUSY_TIMEOUT_MS, open_ro, update_many
from gateway.store.ingest import insert, iso_utc
from gateway.store.marks import DeferredMarks
from gateway.store.schema import DEAD, DELIVERED, PENDING, bump, migrate


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True, slots=True)
class Row:
    """A stored punch: its ``seq`` and the complete JSON record that goes on the wire."""

    seq: int
    event_id: str
    record: str


class DuplicatePunch(StoreError):
    """A manual punch identical to one entered before; nothing was written."""


class Store(DeferredMarks):  # delivered marks written with the next insert (issue 18)
    """SQLite store; every method is safe to call from any thread."""

    def __init__(
        self, path: str | Path, *, clock: Clock | None = None, readonly: bool = False
    ) -> None:
        self.path = Path(path)
        self.clock = clock or SystemClock()
        self.readonly = readonly
        self._lock = threading.RLock()  # the writer connection
        self._unmarked: list[int] = []  # acked seqs whose mark failed (disk full): retried
        self._later: list[int] = []  # acked seqs whose mark waits for company (marks.py)
        self._later_since: float | None = None
        try:
            if readonly:
                self._conn = open_ro(self.path)
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
            # Readers: their own connection and lock in the daemon (see the module docstring).
            self._rconn = self._conn if readonly else open_ro(self.path)
            self._rlock: threading.RLock | threading.Lock = (
                self._lock if readonly else threading.Lock()
            )
            (version,) = self._rconn.execute("PRAGMA user_version").fetchone()
            self._counters = int(version) >= 3  # an older file read by a newer gatewayctl
        except sqlite3.Error as err:
            raise StoreError(f"cannot open store {self.path}: {err}") from err

    # -- lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            if not self.readonly:
                self.flush_marks(force=True)
            if self._rconn is not self._conn:
                with self._rlock:
                    self._rconn.close()
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self) -> _Txn:
        return _Txn(self)

    # -- ingest --------------------------------------------------------------------------
    def add(self, punches: Sequence[Punch]) -> int:
        """Commit punches durably; return how many were new (duplicates by event_id skipped,
        and so are punches pruned long ago: their tombstones remain, issue 13).

        One transaction for the whole batch: all rows and the sequence counter move together.
        """
        if not punches:
            return 0
        now = self.clock.now()
        marks: list[int] = []
        try:
            with self._write() as conn:
                marks = self._piggyback(conn)  # issue 18: one WAL append instead of two
                return len(insert(conn, punches, now))
        except BaseException:
            self._unpiggyback(marks)
            raise

    def add_manual(self, punch: Punch) -> int:
        """Commit a technician's manual punch and its audit row in ONE transaction (issue 13:
        a crash in between used to publish a punch without its audit); return its ``seq``.

        Raises :class:`DuplicatePunch`, writing nothing, when an identical manual punch
        (terminal, user, time, state) was entered before, even one pruned since: the audit
        log is never pruned.
        """
        now = self.clock.now()
        punch_time = punch.time.isoformat(timespec="seconds")
        with self._write() as conn:
            dup = conn.execute(
                "SELECT event_id, entered_at, entered_by FROM manual_audit WHERE terminal=?"
                " AND user_id=? AND punch_time=? AND state=? ORDER BY id LIMIT 1",
                (punch.terminal, punch.user_id, punch_time, punch.state),
            ).fetchone()
            if dup is not None:
                raise DuplicatePunch(
                    f"an identical manual punch (terminal {punch.terminal}, user "
                    f"{punch.user_id}, {punch_time}, {punch.state}) was entered at {dup[1]} by "
                    f"{dup[2]} as {dup[0]}: not entered again"
                )
            seqs = insert(conn, [punch], now)
            if not seqs:
                raise DuplicatePunch(f"punch {punch.event_id} is stored already")
            conn.execute(
                "INSERT INTO manual_audit(event_id, terminal, user_id, punch_time, state,"
                " entered_by, reason, entered_at) VALUES (?,?,?,?,?,?,?,?)",
                (
                    punch.event_id,
                    punch.terminal,
                    punch.user_id,
                    punch_time,
                    punch.state,
                    punch.entered_by or "",
                    punch.reason or "",
                    iso_utc(now),
                ),
            )
        return seqs[0]

    # -- drain ---------------------------------------------------------------------------
    def pending(self, after_seq: int = 0, limit: int = 50) -> list[Row]:
        """The oldest pending rows with ``seq > after_seq``, in ``seq`` order."""
        with self._rlock:
            rows = self._rconn.execute(
                "SELECT seq, event_id, record FROM punches WHERE status=0 AND seq>?"
                " ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ).fetchall()
        return [Row(*r) for r in rows]

    def rows(self, seqs: Iterable[int]) -> list[Row]:
        """The still-pending rows among ``seqs``, in ``seq`` order (for re-sends)."""
        ids = sorted(set(seqs))
        out: list[Row] = []
        with self._rlock:
            for i in range(0, len(ids), 500):
                part = ids[i : i + 500]
                out += [
                    Row(*r)
                    for r in self._rconn.execute(
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

    @property
    def unmarked(self) -> frozenset[int]:
        """Seqs acked by the broker whose mark is still deferred (disk full)."""
        return frozenset(self._unmarked + self._later)

    def _mark_delivered(self, ids: list[int]) -> int:
        with self._write() as conn:
            return self._mark_in(conn, ids)

    def _mark_in(self, conn: sqlite3.Connection, ids: list[int]) -> int:
        now = self.clock.now()
        sql = (
            "UPDATE punches SET status=1, delivered_at=?, attempts=attempts+1"
            " WHERE status=0 AND {} seq IN ({{}})"
        )
        # A first delivery has no delivered_at yet; a re-sent one kept its old one
        # (requeue), so "delivered today" never exceeds "received" (issue 13).
        first = update_many(conn, sql.format("delivered_at IS NULL AND"), [iso_utc(now)], ids)
        again = update_many(conn, sql.format(""), [iso_utc(now)], ids)
        bump(conn, s0=-(first + again), s1=first + again)
        if first or again:
            conn.execute(
                "INSERT INTO daily(day, delivered, resent) VALUES (?, ?, ?) ON CONFLICT(day)"
                " DO UPDATE SET delivered = delivered + excluded.delivered,"
                " resent = resent + excluded.resent",
                (now.astimezone(UTC).date().isoformat(), first, again),
            )
        return first + again

    def dead_letter(self, seqs: Iterable[int], reason: str) -> int:
        ids = list(seqs)
        if not ids:
            return 0
        try:
            with self._write() as conn:
                n = update_many(
                    conn,
                    "UPDATE punches SET status=2, dead_reason=?, attempts=attempts+1"
                    " WHERE status=0 AND seq IN ({})",
                    [reason],
                    ids,
                )
                bump(conn, s0=-n, s2=n)
                return n
        except StoreError as err:  # issue 7: it stays pending and is refused again later
            _log().warning("cannot dead-letter punches yet", count=len(ids), error=str(err))
            return 0

    def requeue(self, *, since: datetime | None = None, dead: bool = False) -> int:
        """Make delivered (received since ``since``) or dead-lettered punches pending again.

        A re-sent row keeps its ``delivered_at``: it marks the next delivery as a re-send.
        The running publisher must be told (``Publisher.wake(rewind=True)``): the rows are
        below its cursor.
        """
        with self._write() as conn:
            if dead:
                cur = conn.execute("UPDATE punches SET status=0, dead_reason=NULL WHERE status=2")
                bump(conn, s2=-cur.rowcount, s0=cur.rowcount)
            else:
                cur = conn.execute(
                    "UPDATE punches SET status=0 WHERE status=1 AND received_at >= ?",
                    (iso_utc(since or datetime.min.replace(tzinfo=UTC)),),
                )
                bump(conn, s1=-cur.rowcount, s0=cur.rowcount)
            return cur.rowcount

    def prune(self, retain_days: int, should_stop: Callable[[], bool] | None = None) -> int:
        """Delete delivered punches older than ``retain_days``, leaving tombstones (dead
        letters are kept). Own connection, short transactions: safe off the main thread."""
        if self.readonly:
            raise StoreError("store opened read-only")
        cutoff = iso_utc(self.clock.now() - timedelta(days=retain_days))
        try:
            return tombstones.prune(self.path, cutoff, should_stop=should_stop or (lambda: False))
        except sqlite3.Error as err:
            raise StoreError(f"prune failed: {err}") from err

    # -- figures -------------------------------------------------------------------------
    def figures(self) -> dict[str, Any]:
        """Queue figures, cheap enough for a 1 Hz health loop and a CLI in another process."""
        now = self.clock.now()
        with self._rlock:
            c = self._rconn
            if self._counters:  # O(1): schema v3 keeps them with the rows
                counts = dict(c.execute("SELECT name, value FROM counters").fetchall())
                pending, dead = counts.get("s0", 0), counts.get("s2", 0)
            else:
                (pending,) = c.execute("SELECT count(*) FROM punches WHERE status=0").fetchone()
                (dead,) = c.execute("SELECT count(*) FROM punches WHERE status=2").fetchone()
            oldest = c.execute(
                "SELECT received_at FROM punches WHERE status=0 ORDER BY seq LIMIT 1"
            ).fetchone()
            today = c.execute(
                f"SELECT received, delivered, {'resent' if self._counters else '0'} FROM daily"  # nosec B608 # noqa: S608 - fixed text
                " WHERE day=?",
                (now.astimezone(UTC).date().isoformat(),),
            ).fetchone()
            (next_seq,) = c.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()
        age = (now - parse_iso(oldest[0])).total_seconds() if oldest else None
        return {
            "pending": pending,  # acked rows whose mark waits (marks.py) count until written
            "oldest_pending_age_s": None if age is None else max(0.0, round(age, 3)),
            "received_today": today[0] if today else 0,
            "delivered_today": today[1] if today else 0,
            "resent_today": today[2] if today else 0,
            "dead_lettered": dead,
            "last_seq": int(next_seq) - 1,
        }

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Read-only helper (peek, export, audit), on the reader connection."""
        with self._rlock:
            return list(self._rconn.execute(sql, params).fetchall())

    def integrity_check(self, quick: bool = False) -> list[str]:
        """``['ok']`` when healthy, else SQLite's list of problems."""
        pragma = "quick_check" if quick else "integrity_check"
        with self._rlock:
            return [r[0] for r in self._rconn.execute(f"PRAGMA {pragma}").fetchall()]

    def backup_to(self, dest: str | Path) -> None:
        """A consistent online copy (SQLite backup API), even while the daemon writes.

        Its own read-only connection, copied in one step: in WAL mode that is one read
        snapshot, so writers go on meanwhile and the copy never restarts (issue 12/13).
        """
        src = open_ro(self.path)
        try:
            src.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            target = sqlite3.connect(dest)
            try:
                src.backup(target)
            finally:
                target.close()
        finally:
            src.close()


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


def _log() -> Any:
    """structlog, imported only when there is something to say: ``gatewayctl status`` opens
    the store read-only and must not pay structlog's import (0.15 s here, more on a Pi 3)."""
    import structlog

    return structlog.get_logger(__name__)


__all__ = ["DEAD", "DELIVERED", "PENDING", "DuplicatePunch", "Row", "Store", "iso_utc", "parse_iso"]
