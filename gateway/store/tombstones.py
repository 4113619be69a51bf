"""Pruning that never resurrects (issue 13): delivered rows go, a 16-byte tombstone stays.

A ZK terminal keeps its whole log (up to 100 000+ records) and every reconnect downloads it
again; the store dedupes by ``event_id``. Once ``retain_delivered_days`` have pruned a row,
only its tombstone, ``blake2b-128(event_id)`` in the ``pruned`` table, remembers it: ``add``
drops any punch whose digest is there. Why a digest of every pruned id and not a
per-terminal high-water mark, and what it costs: docs/design.md ("Pruning never
resurrects").

``prune`` runs on its own connection, in short transactions of :data:`CHUNK` rows (each one
writes the tombstones and deletes their rows together: a kill -9 between two leaves every
pruned row tombstoned), so the daemon's writers and the 1 Hz health snapshot never wait
long behind it (issue 12: it used to run on the supervisor thread under the store lock).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

from gateway.store.connect import BUSY_TIMEOUT_MS
from gateway.store.schema import bump

CHUNK = 2000


def digest(event_id: str) -> bytes:
    """The tombstone of ``event_id``: 16 bytes (a collision needs ~2^64 ids; see design.md)."""
    return hashlib.blake2b(event_id.encode("utf-8"), digest_size=16).digest()


def pruned_among(conn: sqlite3.Connection, event_ids: Iterable[str]) -> set[str]:
    """Which of ``event_ids`` were stored once and pruned since (one query per 500 ids)."""
    if conn.execute("SELECT 1 FROM pruned LIMIT 1").fetchone() is None:
        return set()  # the usual case before the first prune: no hashing at all
    by_hash = {digest(e): e for e in event_ids}
    keys = list(by_hash)
    found: set[str] = set()
    for i in range(0, len(keys), 500):
        part = keys[i : i + 500]
        sql = f"SELECT h FROM pruned WHERE h IN ({','.join('?' * len(part))})"  # nosec B608 # noqa: S608 - '?' only
        found.update(by_hash[r[0]] for r in conn.execute(sql, part))
    return found


def prune(
    path: str | Path,
    cutoff: str,
    *,
    chunk: int = CHUNK,
    should_stop: Callable[[], bool] = lambda: False,
) -> int:
    """Delete delivered punches delivered before ``cutoff`` (ISO UTC), tombstoning each.

    Dead letters and pending rows are never touched. Returns how many rows went.
    """
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    total = 0
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA synchronous = FULL")
        while not should_stop():
            conn.execute("BEGIN IMMEDIATE")
            try:
                rows = conn.execute(
                    "SELECT seq, event_id, terminal FROM punches WHERE status=1"
                    " AND delivered_at < ? LIMIT ?",
                    (cutoff, chunk),
                ).fetchall()
                conn.executemany(
                    "INSERT OR IGNORE INTO pruned(h) VALUES (?)",
                    [(digest(e),) for _, e, _t in rows],
                )
                seqs = [s for s, _e, _t in rows]
                for i in range(0, len(seqs), 500):
                    part = seqs[i : i + 500]
                    conn.execute(
                        f"DELETE FROM punches WHERE seq IN ({','.join('?' * len(part))})",  # nosec B608 # noqa: S608
                        part,
                    )
                bump(conn, s1=-len(rows))
                gone = Counter(t for _s, _e, t in rows)
                conn.executemany(
                    "UPDATE terminal_stats SET stored = stored - ? WHERE terminal = ?",
                    [(n, t) for t, n in gone.items()],
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            total += len(rows)
            if len(rows) < chunk:
                break
    finally:
        conn.close()
    return total


def tombstone_ids(conn: sqlite3.Connection, event_ids: Iterable[str]) -> int:
    """Add tombstones for ``event_ids`` (restore carries the current store's over)."""
    cur = conn.executemany(
        "INSERT OR IGNORE INTO pruned(h) VALUES (?)", ((digest(e),) for e in event_ids)
    )
    return cur.rowcount
