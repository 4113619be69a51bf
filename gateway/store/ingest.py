"""Ingest inside a store transaction: gap-free seqs, idempotent by ``event_id``, tombstones.

Used by ``Store.add`` and ``Store.add_manual`` (which adds its audit row in the same
transaction). ``seq`` comes from ``meta.next_seq``, moved in the same transaction as the rows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime

from gateway.pipeline.punch import Punch
from gateway.store.schema import bump
from gateway.store.tombstones import pruned_among


def iso_utc(dt: datetime) -> str:
    """``2026-11-23T00:59:13.204Z``: the timestamp form of every ``*_at`` field."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def insert(conn: sqlite3.Connection, punches: Sequence[Punch], now: datetime) -> list[int]:
    """Insert the new ones among ``punches`` inside the caller's transaction; their seqs."""
    received_at = iso_utc(now)
    (next_seq,) = conn.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()
    first = int(next_seq)
    unique = list({p.event_id: p for p in punches}.values())  # in-batch duplicates
    gone = pruned_among(conn, [p.event_id for p in unique])
    if gone:  # issue 13: a record pruned long ago, read again from a terminal's log
        unique = [p for p in unique if p.event_id not in gone]
    if not unique:
        return []
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
    if rows:
        conn.execute("UPDATE meta SET value=? WHERE key='next_seq'", (str(first + len(rows)),))
        bump(conn, s0=len(rows))
        per: dict[str, tuple[int, int]] = {}
        for seq, _e, terminal, _r, _at in rows:
            n, _last = per.get(terminal, (0, 0))
            per[terminal] = (n + 1, seq)
        conn.executemany(
            "INSERT INTO terminal_stats(terminal, stored, last_seq, last_received_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT(terminal) DO UPDATE SET"
            " stored = stored + excluded.stored, last_seq = excluded.last_seq,"
            " last_received_at = excluded.last_received_at",
            [(t, n, last, received_at) for t, (n, last) in per.items()],
        )
        conn.execute(
            "INSERT INTO daily(day, received) VALUES (?, ?) ON CONFLICT(day)"
            " DO UPDATE SET received = received + excluded.received",
            (now.astimezone(UTC).date().isoformat(), len(rows)),
        )
    return [r[0] for r in rows]


_INSERT = "INSERT INTO punches(seq, event_id, terminal, record, received_at) VALUES (?, ?, ?, ?, ?)"


def _rows(
    punches: Sequence[Punch], first: int, received_at: str
) -> list[tuple[int, str, str, str, str]]:
    """Rows for ``_INSERT`` with consecutive seqs from ``first``; the record is the wire JSON."""
    return [
        (seq, p.event_id, p.terminal, p.to_json(seq, received_at), received_at)
        for seq, p in enumerate(punches, first)
    ]


def _existing(conn: sqlite3.Connection, event_ids: list[str], chunk: int = 500) -> set[str]:
    """Which of ``event_ids`` are already stored (one indexed query per 500 ids)."""
    found: set[str] = set()
    for i in range(0, len(event_ids), chunk):
        part = event_ids[i : i + chunk]
        marks = ",".join("?" * len(part))
        sql = f"SELECT event_id FROM punches WHERE event_id IN ({marks})"  # nosec B608 # noqa: S608 - '?' only
        found.update(r[0] for r in conn.execute(sql, part))
    return found
