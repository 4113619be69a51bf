"""Store schema and migrations, versioned with ``PRAGMA user_version``.

Each migration is a list of statements applied in one transaction with the version bump, so
a kill -9 during an upgrade leaves the old or the new schema, never half of one.
"""

from __future__ import annotations

import sqlite3

# status values of a punch row
PENDING, DELIVERED, DEAD = 0, 1, 2

# The O(1) figures of schema v3, recomputed from the rows (``recount``).
RECOUNT = [
    "DELETE FROM counters",
    "INSERT INTO counters(name, value) SELECT 's' || s, (SELECT count(*) FROM punches"
    " WHERE status = s) FROM (SELECT 0 AS s UNION ALL SELECT 1 UNION ALL SELECT 2)",
    "DELETE FROM terminal_stats",
    "INSERT INTO terminal_stats(terminal, stored, last_seq, last_received_at) SELECT"
    " terminal, count(*), max(seq), max(received_at) FROM punches GROUP BY terminal",
]

MIGRATIONS: list[list[str]] = [
    # v1: punches + gap-free sequence + daily figures
    [
        """CREATE TABLE punches (
            seq          INTEGER PRIMARY KEY,   -- gateway-wide, gap-free (see meta.next_seq)
            event_id     TEXT NOT NULL UNIQUE,  -- idempotency key: re-reads dedupe here
            terminal     TEXT NOT NULL,
            record       TEXT NOT NULL,         -- the punch JSON of PRODUCT.md §4, complete
            received_at  TEXT NOT NULL,         -- ISO 8601 UTC, when the store committed it
            status       INTEGER NOT NULL DEFAULT 0,  -- 0 pending, 1 delivered, 2 dead letter
            delivered_at TEXT,
            attempts     INTEGER NOT NULL DEFAULT 0,
            dead_reason  TEXT
        )""",
        "CREATE INDEX punches_pending ON punches(seq) WHERE status = 0",
        "CREATE INDEX punches_delivered ON punches(delivered_at) WHERE status = 1",
        "CREATE INDEX punches_dead ON punches(seq) WHERE status = 2",
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "INSERT INTO meta(key, value) VALUES ('next_seq', '1')",
        "CREATE TABLE daily (day TEXT PRIMARY KEY, received INTEGER NOT NULL DEFAULT 0,"
        " delivered INTEGER NOT NULL DEFAULT 0)",
    ],
    # v2: audit log of manual punches (kept when delivered punches are pruned)
    [
        """CREATE TABLE manual_audit (
            id          INTEGER PRIMARY KEY,
            event_id    TEXT NOT NULL,
            terminal    TEXT NOT NULL,
            user_id     TEXT NOT NULL,
            punch_time  TEXT NOT NULL,
            state       TEXT NOT NULL,
            entered_by  TEXT NOT NULL,
            reason      TEXT NOT NULL,
            entered_at  TEXT NOT NULL
        )""",
    ],
    # v3 (issue 13): tombstones of pruned punches; O(1) figures kept by the store's writes in
    # the same transaction as the rows (not by triggers: a per-row trigger made a 100 000-row
    # ZK ingest 2.5x slower); per-terminal counts; a look-up index for manual duplicates.
    [
        # blake2b-128 of each pruned punch's event_id (docs/design.md "Pruning never
        # resurrects"): a terminal's old record read again is recognised after its row went.
        "CREATE TABLE pruned (h BLOB PRIMARY KEY) WITHOUT ROWID",
        "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
        """CREATE TABLE terminal_stats (
            terminal         TEXT PRIMARY KEY,
            stored           INTEGER NOT NULL,
            last_seq         INTEGER NOT NULL,
            last_received_at TEXT
        )""",
        *RECOUNT,
        "CREATE INDEX manual_audit_punch ON manual_audit(terminal, user_id, punch_time, state)",
        "ALTER TABLE daily ADD COLUMN resent INTEGER NOT NULL DEFAULT 0",
    ],
    # v4 (issue 16): remote commands. remote_audit keeps every command, accepted or refused,
    # and its result; like manual_audit it is never pruned. remote_ids is the replay cache
    # (accepted ids until their expiry) and holds each result so a repeated id gets it back.
    [
        """CREATE TABLE remote_audit (
            id          INTEGER PRIMARY KEY,
            received_at TEXT NOT NULL,
            cmd_id      TEXT,           -- the envelope's id, when readable
            issuer      TEXT,           -- the key name (verified unless the signature failed)
            verb        TEXT,
            approver    TEXT,
            args        TEXT,           -- JSON, truncated
            outcome     TEXT NOT NULL,  -- running, done, failed, refused, duplicate, dropped
            kind        TEXT,           -- why refused or failed (docs/remote.md)
            detail      TEXT,
            result      TEXT,           -- JSON, truncated
            finished_at TEXT
        )""",
        "CREATE INDEX remote_audit_cmd ON remote_audit(cmd_id)",
        """CREATE TABLE remote_ids (
            id          TEXT PRIMARY KEY,
            sig         TEXT NOT NULL,
            keep_until  TEXT NOT NULL,
            audit_id    INTEGER NOT NULL,
            result      TEXT            -- NULL while the command runs
        )""",
    ],
]

SCHEMA_VERSION = len(MIGRATIONS)


def recount(conn: sqlite3.Connection) -> None:
    """Recompute ``counters`` and ``terminal_stats`` from the rows (O(n)), inside the
    caller's transaction: after writes that bypass ``Store`` (salvage, restore)."""
    for stmt in RECOUNT:
        conn.execute(stmt)


def bump(conn: sqlite3.Connection, **delta: int) -> None:
    """Move the status counters (``s0=+5, s1=-5``) in the caller's transaction."""
    conn.executemany(
        "UPDATE counters SET value = value + ? WHERE name = ?",
        [(n, name) for name, n in delta.items() if n],
    )


def migrate(conn: sqlite3.Connection) -> int:
    """Bring ``conn`` to ``SCHEMA_VERSION``; return the version found before."""
    (found,) = conn.execute("PRAGMA user_version").fetchone()
    if found > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(
            f"store schema v{found} is newer than this gateway understands (v{SCHEMA_VERSION})"
        )
    for version in range(found, SCHEMA_VERSION):
        with conn:  # one transaction: the statements and the version bump
            conn.execute("BEGIN IMMEDIATE")
            for stmt in MIGRATIONS[version]:
                conn.execute(stmt)
            conn.execute(f"PRAGMA user_version = {version + 1}")
    return int(found)
