"""Store schema and migrations, versioned with ``PRAGMA user_version``.

Each migration is a list of statements applied in one transaction with the version bump, so
a kill -9 during an upgrade leaves the old or the new schema, never half of one.
"""

from __future__ import annotations

import sqlite3

# status values of a punch row
PENDING, DELIVERED, DEAD = 0, 1, 2

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
    # v3 (issue 13): tombstones of pruned punches; figures kept by triggers (O(1) in store
    # size, right whoever writes: the daemon, the CLI, guard's salvage, a technician's
    # sqlite3); per-terminal counts; indexes for status' rates and manual duplicates.
    [
        # blake2b-128 of each pruned punch's event_id (docs/design.md "Pruning never
        # resurrects"): a terminal's old record read again is recognised after its row went.
        "CREATE TABLE pruned (h BLOB PRIMARY KEY) WITHOUT ROWID",
        "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
        "INSERT INTO counters(name, value) SELECT 's' || s, (SELECT count(*) FROM punches"
        " WHERE status = s) FROM (SELECT 0 AS s UNION ALL SELECT 1 UNION ALL SELECT 2)",
        """CREATE TABLE terminal_stats (
            terminal         TEXT PRIMARY KEY,
            stored           INTEGER NOT NULL,
            last_seq         INTEGER NOT NULL,
            last_received_at TEXT
        )""",
        "INSERT INTO terminal_stats(terminal, stored, last_seq, last_received_at)"
        " SELECT terminal, count(*), max(seq), max(received_at) FROM punches GROUP BY terminal",
        """CREATE TRIGGER punches_ins AFTER INSERT ON punches BEGIN
            UPDATE counters SET value = value + 1 WHERE name = 's' || NEW.status;
            INSERT INTO terminal_stats(terminal, stored, last_seq, last_received_at)
                VALUES (NEW.terminal, 1, NEW.seq, NEW.received_at)
                ON CONFLICT(terminal) DO UPDATE SET stored = stored + 1,
                last_seq = max(last_seq, excluded.last_seq),
                last_received_at = excluded.last_received_at;
        END""",
        """CREATE TRIGGER punches_upd AFTER UPDATE OF status ON punches
            WHEN OLD.status IS NOT NEW.status BEGIN
            UPDATE counters SET value = value - 1 WHERE name = 's' || OLD.status;
            UPDATE counters SET value = value + 1 WHERE name = 's' || NEW.status;
        END""",
        """CREATE TRIGGER punches_del AFTER DELETE ON punches BEGIN
            UPDATE counters SET value = value - 1 WHERE name = 's' || OLD.status;
            UPDATE terminal_stats SET stored = stored - 1 WHERE terminal = OLD.terminal;
        END""",
        "CREATE INDEX punches_received ON punches(received_at)",
        "CREATE INDEX manual_audit_punch ON manual_audit(terminal, user_id, punch_time, state)",
        "ALTER TABLE daily ADD COLUMN resent INTEGER NOT NULL DEFAULT 0",
    ],
]

SCHEMA_VERSION = len(MIGRATIONS)


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
