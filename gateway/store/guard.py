"""Self-healing storage: a corrupt database is moved aside, a full disk is waited out.

At start (``open_store``): ``PRAGMA quick_check``. A database SQLite cannot open ("file is
not a database", "database disk image is malformed") or that fails the check is *moved aside*,
never deleted: ``gateway.db`` → ``gateway.db.corrupt-20261123T225959Z`` (its ``-wal`` and
``-shm`` follow under the same stem, so SQLite still pairs them). A fresh store is created and:

* every pending or dead-lettered row that can still be read from the quarantined file is
  copied into it with its original ``seq`` (serial punches have no second copy anywhere);
* ``seq`` continues after the highest seq that can be salvaged (``max(seq)`` and the old
  ``next_seq``); if nothing is readable it restarts at 1, and consumers see that together
  with a new ``boot_id`` in the status topic (docs/reliability.md);
* terminals that keep their own log (ZK) refill it by themselves: every driver open
  reconciles the full log, and deterministic ``event_id``s dedupe against salvaged rows;
  readable tombstones and delivered ids are kept as tombstones (issue 13), so what was
  delivered before is not published again;
* the quarantine is recorded in the fresh store's ``meta`` table (key ``quarantine``), and
  ``StorageGuard.fault()`` reports fault 4 from it, across restarts, until a technician
  acknowledges it with ``gatewayctl storage ack`` (``gateway/cli/cmd_storage.py``; the CLI
  owns the commands, this module only ``acknowledge(store)``).

A store that cannot be opened for another reason (permissions, a schema newer than this
gateway) is *not* quarantined: the error is raised, because moving it aside would hide a
problem that a new store cannot fix.

Disk full (``SQLITE_FULL`` / ``ENOSPC``) is classified by ``is_disk_full`` so the runner can
keep a batch in memory and retry it (fault 3) instead of treating it as a database error.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

import structlog

from gateway.errors import StoreError
from gateway.pipeline.driver import Clock, SystemClock
from gateway.store.db import Store, iso_utc
from gateway.store.schema import recount
from gateway.store.tombstones import digest

log = structlog.get_logger(__name__)

QUARANTINE_KEY = "quarantine"
MAX_SALVAGE_SEQ = 5_000_000  # ranges scanned when max(seq) itself is unreadable
SQLITE_CORRUPT, SQLITE_FULL, SQLITE_NOTADB = 11, 13, 26
_CORRUPT_TEXT = ("file is not a database", "malformed", "database corrupt")
_FULL_TEXT = ("database or disk is full", "no space left on device")


def _chain(err: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    cur: BaseException | None = err
    while cur is not None and cur not in out:
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def is_disk_full(err: BaseException) -> bool:
    """True for SQLITE_FULL ("database or disk is full") or ENOSPC anywhere in the chain."""
    for e in _chain(err):
        if isinstance(e, sqlite3.Error) and getattr(e, "sqlite_errorcode", None) == SQLITE_FULL:
            return True
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(t in str(e).lower() for t in _FULL_TEXT):
            return True
    return False


def is_corrupt(err: BaseException) -> bool:
    """True for SQLITE_CORRUPT / SQLITE_NOTADB (or their messages) anywhere in the chain."""
    for e in _chain(err):
        code = getattr(e, "sqlite_errorcode", None)
        if (
            isinstance(e, sqlite3.Error)
            and code is not None
            and code & 0xFF
            in (
                SQLITE_CORRUPT,
                SQLITE_NOTADB,
            )
        ):
            return True
        if any(t in str(e).lower() for t in _CORRUPT_TEXT):
            return True
    return False


@dataclass(frozen=True)
class Quarantine:
    """What ``open_store`` did with a corrupt database."""

    moved_to: Path
    files: tuple[Path, ...]
    reason: str
    at: str
    salvaged_rows: int
    last_seq: int  # the highest seq salvaged (0: nothing readable, seq restarts at 1)

    def as_meta(self) -> str:
        return json.dumps(
            {
                "moved_to": self.moved_to.name,
                "reason": self.reason[:300],
                "at": self.at,
                "salvaged_rows": self.salvaged_rows,
                "last_seq": self.last_seq,
            }
        )


def open_store(path: str | Path, *, clock: Clock | None = None) -> tuple[Store, Quarantine | None]:
    """Open the store; quarantine and replace it when it is corrupt (module docstring)."""
    p = Path(path)
    clk = clock or SystemClock()
    problem: str | None = None
    try:
        store = Store(p, clock=clk)
    except StoreError as err:
        if not is_corrupt(err):
            raise
        problem = str(err)
    else:
        try:
            result = store.integrity_check(quick=True)
        except (sqlite3.Error, StoreError) as err:
            result = [f"quick_check failed: {err}"]
        if result == ["ok"]:
            return store, None
        store.close()
        problem = "quick_check: " + "; ".join(result[:5])
    log.error("store corrupt: moving it aside", db=str(p), problem=problem)
    q = _quarantine(p, problem, clk)
    store = Store(p, clock=clk)  # creates the schema
    store.close()
    _seed(p, q, _salvage(q.moved_to))
    store = Store(p, clock=clk)
    q = StorageGuard(store).quarantine() or q
    log.error(
        "fresh store started",
        db=str(p),
        moved_to=str(q.moved_to),
        salvaged_rows=q.salvaged_rows,
        seq_continues_after=q.last_seq,
    )
    return store, q


def _quarantine(p: Path, reason: str, clock: Clock) -> Quarantine:
    at = clock.now()
    stamp = at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    dest = p.with_name(f"{p.name}.corrupt-{stamp}")
    n = 1
    while any(Path(f"{dest}{s}").exists() for s in ("", "-wal", "-shm")):
        dest = p.with_name(f"{p.name}.corrupt-{stamp}-{n}")
        n += 1
    moved: list[Path] = []
    for suffix in ("", "-wal", "-shm"):
        src = Path(f"{p}{suffix}")
        if src.exists():
            target = Path(f"{dest}{suffix}")
            os.replace(src, target)  # a rename: the evidence is kept, never deleted
            moved.append(target)
    _fsync_dir(p.parent)
    return Quarantine(dest, tuple(moved), reason, iso_utc(at), 0, 0)


@dataclass
class _Salvage:
    rows: list[tuple[Any, ...]]
    last_seq: int
    tombstones: list[bytes] = field(default_factory=list)


def _salvage(old: Path) -> _Salvage:
    """Read what can still be read: pending/dead rows, the highest seq. Never raises."""
    rows: list[tuple[Any, ...]] = []
    last = 0
    try:
        conn = sqlite3.connect(f"file:{old}?mode=ro", uri=True)
    except sqlite3.Error:
        return _Salvage([], 0)
    try:
        for sql in ("SELECT max(seq) FROM punches", "SELECT value FROM meta WHERE key='next_seq'"):
            with contextlib.suppress(sqlite3.Error, TypeError, ValueError):
                (value,) = conn.execute(sql).fetchone()
                last = max(last, int(value) - (sql.startswith("SELECT value")))
        # Range by range over the table b-tree (rowid = seq), no index: a damaged page
        # costs only the rows on it, and a damaged index hides nothing.
        step = 64
        top = last if 0 < last <= MAX_SALVAGE_SEQ else MAX_SALVAGE_SEQ  # a garbage max(seq)
        for lo in range(0, top + 1, step):
            with contextlib.suppress(sqlite3.Error):
                rows += conn.execute(
                    "SELECT seq, event_id, terminal, record, received_at, status, dead_reason,"
                    " attempts FROM punches NOT INDEXED WHERE seq > ? AND seq <= ?"
                    " AND status != 1",
                    (lo, lo + step),
                ).fetchall()
            if last == 0 and lo > 100_000 and not rows:
                break  # max(seq) unreadable and nothing found so far: give up early
        if rows:
            last = max([last, *(int(r[0]) for r in rows)])
        # Issue 13: what was pruned or delivered must not come back from the terminals'
        # logs as new punches; keep whatever of it can still be read.
        marks: list[bytes] = []
        with contextlib.suppress(sqlite3.Error):
            marks += [bytes(r[0]) for r in conn.execute("SELECT h FROM pruned")]
        with contextlib.suppress(sqlite3.Error):
            marks += [
                digest(r[0]) for r in conn.execute("SELECT event_id FROM punches WHERE status = 1")
            ]
    finally:
        conn.close()
    return _Salvage(rows, last, marks)


def _seed(p: Path, q: Quarantine, salvage: _Salvage) -> None:
    """Put the salvaged rows, the seq counter and the quarantine note in the fresh store."""
    conn = sqlite3.connect(p, isolation_level=None)
    kept = 0
    try:
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("BEGIN IMMEDIATE")
        for row in salvage.rows:
            with contextlib.suppress(sqlite3.Error):  # a damaged row is skipped, not fatal
                cur = conn.execute(
                    "INSERT OR IGNORE INTO punches(seq, event_id, terminal, record, received_at,"
                    " status, dead_reason, attempts) VALUES (?,?,?,?,?,?,?,?)",
                    row,
                )
                kept += cur.rowcount
        conn.executemany(
            "INSERT OR IGNORE INTO pruned(h) VALUES (?)", ((h,) for h in salvage.tombstones)
        )
        conn.execute("UPDATE meta SET value=? WHERE key='next_seq'", (str(salvage.last_seq + 1),))
        recount(conn)  # rows inserted here, not through Store: the figures follow them
        note = Quarantine(q.moved_to, q.files, q.reason, q.at, kept, salvage.last_seq)
        conn.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
            (QUARANTINE_KEY, note.as_meta()),
        )
        conn.execute("COMMIT")
    finally:
        conn.close()


def _fsync_dir(d: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class StorageGuard:
    """Reads the quarantine note for the health model (fault 4 until acknowledged)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def quarantine(self) -> Quarantine | None:
        try:
            rows = self.store.query("SELECT value FROM meta WHERE key=?", (QUARANTINE_KEY,))
        except (sqlite3.Error, StoreError):
            return None
        if not rows:
            return None
        try:
            d = json.loads(rows[0][0])
            moved = self.store.path.with_name(str(d["moved_to"]))
            return Quarantine(
                moved,
                (moved,),
                str(d["reason"]),
                str(d["at"]),
                int(d["salvaged_rows"]),
                int(d["last_seq"]),
            )
        except (ValueError, KeyError, TypeError):
            return Quarantine(self.store.path, (), "unreadable quarantine note", "", 0, 0)

    def fault(self) -> str | None:
        """Fault-4 text while a quarantine is unacknowledged (for ``HealthModel``)."""
        q = self.quarantine()
        if q is None:
            return None
        return (
            f"database was corrupt ({q.reason[:120]}); moved aside to {q.moved_to.name} at "
            f"{q.at}; fresh store started ({q.salvaged_rows} pending punch(es) salvaged, seq "
            f"continues after {q.last_seq}); terminals with logs are re-pulled. Send the file "
            "to support, then acknowledge: gatewayctl storage ack"
        )


def acknowledge(store: Store) -> bool:
    """Clear the quarantine note (the technician has seen it); True if there was one."""
    with store._write() as conn:
        cur = conn.execute("DELETE FROM meta WHERE key=?", (QUARANTINE_KEY,))
        return cur.rowcount > 0
