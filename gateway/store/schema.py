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
    # v3 (issue 16): remote commands. remote_audit keeps every command, accepted or refused,
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
