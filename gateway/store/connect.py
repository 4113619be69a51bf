"""How the store opens SQLite: read-only connections (also for a technician who may not
create the ``-shm`` file) and chunked ``UPDATE ... IN (...)`` for long id lists."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

BUSY_TIMEOUT_MS = 5000


def open_ro(path: Path) -> sqlite3.Connection:
    conn = connect_ro(f"file:{path}?mode=ro")
    try:
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
    except sqlite3.OperationalError:
        # A WAL file with the daemon stopped, read by a technician (group attgw) who may
        # not create the -shm beside it: SQLite refuses ("attempt to write a readonly
        # database"). With no -wal left every commit is in the main file, so read it as
        # immutable (issue 12: read-only commands must work as a member of attgw).
        if Path(f"{path}-wal").exists() or os.access(path.parent, os.W_OK):
            raise
        conn.close()
        conn = connect_ro(f"file:{path}?mode=ro&immutable=1")
    return conn


def connect_ro(uri: str) -> sqlite3.Connection:
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


def update_many(
    conn: sqlite3.Connection, sql: str, head: list[Any], ids: list[int], chunk: int = 500
) -> int:
    n = 0
    for i in range(0, len(ids), chunk):
        part = ids[i : i + chunk]
        cur = conn.execute(sql.format(",".join("?" * len(part))), [*head, *part])
        n += cur.rowcount
    return n
