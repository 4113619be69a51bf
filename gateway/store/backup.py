"""Backups of the punch store: online copies, automatic rotation, and a careful restore.

* :func:`backup` copies through SQLite's online backup API (``Store.backup_to``), so it is
  consistent even while the daemon writes; the copy is written beside its final name, checked
  with ``PRAGMA quick_check``, fsynced, then renamed into place (a half-written file never
  carries a backup's name).
* :func:`automatic` is the daemon's ``Periodic`` task: one copy every ``backup_interval_h``
  into ``<data_dir>/backups/``, keeping the newest ``backup_keep``. Issue 18 (SD-card wear):
  a copy is made only when the newest is older than the interval (not at every start: it
  was 42 MB/hour of an idle gateway's writes) and the store changed since (:func:`fingerprint`).
* :func:`restore` refuses while a daemon runs (it takes the daemon's own lock,
  :mod:`gateway.store.lock`, for the whole swap), checks the file (integrity, schema
  version, tables) first, and moves the current database aside with a timestamp: nothing is
  deleted. The restored store never rewinds what consumers have seen (issue 13): its
  ``next_seq`` is ``max(current, backup's)``, so one ``seq`` never names two punches; the
  current store's tombstones and delivered ids become tombstones (a terminal's old records
  are not published again); and its punches the backup lacks that were never delivered
  (pending or dead, e.g. a serial reader's, which exist nowhere else) and its manual-audit
  rows are carried over, the punches with new seqs above every old one.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.store import tombstones
from gateway.store.db import Store
from gateway.store.lock import StoreLock
from gateway.store.schema import SCHEMA_VERSION, migrate, recount

_ENC = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
BACKUP_DIR = "backups"
PREFIX = "gateway-"


class BackupError(Exception):
    """A backup or restore could not be done; the message says what to do."""


def stamp(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


#: Files holding every employee's punches (exports, bundles): owner only (issue 12). The
#: mode is given when the file is created (no window in which it is readable); the umask can
#: only narrow it.
FILE_MODE = 0o600
#: Backups: owner and group, at most (issue 12: "0640 group attgw at most"). The backups
#: folder is setgid attgw (tmpfiles.d), so a copy made by root or by a technician in group
#: attgw belongs to group attgw, and the technicians who may back up may also read them.
BACKUP_MODE = 0o640
#: The store's mode as the daemon creates it (the unit's UMask=0027).
DB_MODE = 0o640


def create_private(path: Path, mode: int = FILE_MODE) -> None:
    """Create ``path`` empty with ``mode``; fails if it exists (or is a symlink)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    os.close(fd)


def backup(store: Store, dest: str | os.PathLike[str]) -> dict[str, Any]:
    """Copy ``store`` to ``dest`` consistently; return what was written.

    ``dest``'s folder must exist: a mistyped path is an error, not a new directory.
    """
    final = Path(dest)
    tmp = final.with_name(final.name + ".partial")
    tmp.unlink(missing_ok=True)
    # SQLite opens an existing empty file as a new database and gives its journal files the
    # database file's mode, so the copy is private from its first byte.
    create_private(tmp, BACKUP_MODE)
    try:
        store.backup_to(tmp)
        # The copy inherits WAL mode from the store; a backup must be one self-contained
        # file (no -wal/-shm beside it), so switch it to a rollback journal.
        conn = sqlite3.connect(tmp)
        try:
            conn.execute("PRAGMA journal_mode = DELETE")
        finally:
            conn.close()
        info = inspect(tmp)
        if info["integrity"] != ["ok"]:
            raise BackupError(f"the copy failed its integrity check: {info['integrity'][:3]}")
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(final.parent)
    return {"path": str(final), "bytes": final.stat().st_size, **info}


def inspect(path: str | os.PathLike[str], *, quick: bool = True) -> dict[str, Any]:
    """Integrity, schema version and punch counts of a database file (opened read-only)."""
    p = Path(path)
    if not p.is_file():
        raise BackupError(f"{p}: no such file")
    try:
        conn = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
    except sqlite3.Error as err:
        raise BackupError(f"{p}: cannot open: {err}") from err
    try:
        integrity = [
            r[0] for r in conn.execute("PRAGMA quick_check" if quick else "PRAGMA integrity_check")
        ]
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        counts: dict[str, int] = {}
        if "punches" in tables:
            for status, n in conn.execute("SELECT status, count(*) FROM punches GROUP BY status"):
                counts[{0: "pending", 1: "delivered", 2: "dead"}.get(status, str(status))] = n
    except sqlite3.DatabaseError as err:
        raise BackupError(f"{p}: not a usable SQLite database: {err}") from err
    finally:
        conn.close()
    return {
        "integrity": integrity,
        "schema_version": int(version),
        "tables": sorted(tables),
        "punches": counts,
    }


def automatic(
    store: Store, data_dir: str | os.PathLike[str], keep: int, interval_h: float | None = None
) -> Path | None:
    """The daemon's periodic backup: a new copy, then rotation to ``keep`` copies.

    With ``interval_h`` (the daemon's task, checked hourly): nothing is written while the
    newest copy is younger than the interval, or when the store holds what it holds (issue
    18); None then.
    """
    folder = Path(data_dir) / BACKUP_DIR
    folder.mkdir(mode=0o750, exist_ok=True)  # ours, inside the data directory
    if interval_h is not None and not due(store, folder, interval_h):
        return None
    dest = folder / f"{PREFIX}{stamp()}.db"
    backup(store, dest)
    rotate(folder, keep)
    return dest


def due(store: Store, folder: Path, interval_h: float) -> bool:
    """A new automatic copy is due: none yet, or the newest is older than ``interval_h`` and
    differs from the store. A copy that cannot be read counts as different (a new one)."""
    now = datetime.now(UTC).timestamp()
    dated: list[tuple[float, Path]] = []
    for p in folder.glob(f"{PREFIX}*.db"):
        try:
            mtime = p.stat().st_mtime
        except OSError:
            continue
        # A copy dated in the future (made before a Pi without a clock battery synced) is no
        # reference: waiting for the clock to catch up could mean no backup for years.
        if mtime <= now + 60.0:
            dated.append((mtime, p))
    if not dated:
        return True
    mtime, newest = max(dated)
    # 1 % slack: an hourly check must not miss a 24 h interval by the check's own drift.
    if now - mtime < interval_h * 3600.0 * 0.99:
        return False
    mine = fingerprint(store.path)
    return mine is None or mine != fingerprint(newest)


#: What a backup would change if made again: the seq counter, the status counts (deliveries,
#: dead letters, prunes and re-sends move them), per-day figures (a re-sent punch delivered
#: again), audits and remote commands, tombstones. Cheap: no table scan of the punches.
_FINGERPRINT = [
    "SELECT group_concat(key || '=' || value) FROM (SELECT * FROM meta ORDER BY key)",
    "SELECT group_concat(name || '=' || value) FROM (SELECT * FROM counters ORDER BY name)",
    "SELECT group_concat(day || delivered || ',' || received || ',' || resent)"
    " FROM (SELECT * FROM daily ORDER BY day)",
    "SELECT max(seq), count(*) FROM punches",
    "SELECT count(*) FROM pruned",
    "SELECT max(id), count(*) FROM manual_audit",
    "SELECT max(id), count(finished_at), total(length(result)) FROM remote_audit",
    "SELECT count(*), count(result) FROM remote_ids",
]


def fingerprint(path: str | os.PathLike[str]) -> tuple[Any, ...] | None:
    """The :data:`_FINGERPRINT` figures of a database file (read-only); None if unreadable
    (an older schema, a damaged file): the caller then makes a copy."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        return (version, *(tuple(conn.execute(q).fetchone()) for q in _FINGERPRINT))
    except sqlite3.Error:
        return None
    finally:
        conn.close()


def rotate(folder: Path, keep: int) -> list[Path]:
    """Delete the oldest automatic backups beyond ``keep`` (names sort by time)."""
    copies = sorted(folder.glob(f"{PREFIX}*.db"))
    doomed = copies[: max(0, len(copies) - keep)]
    for p in doomed:
        p.unlink(missing_ok=True)
    return doomed


def restore(source: str | os.PathLike[str], db_path: str | os.PathLike[str]) -> dict[str, Any]:
    """Put ``source`` in place of ``db_path``; raises ``StoreLocked`` while a daemon runs.

    The current database and its ``-wal``/``-shm`` move together to
    ``gateway.db.before-restore-<UTC time>`` so a kill -9 leftover WAL stays with its file.
    """
    owner = store_owner(Path(db_path))  # refused before anything moves (issue 12)
    with StoreLock(Path(db_path).parent):
        return _restore(Path(source), Path(db_path), owner)


def _restore(src: Path, db: Path, owner: tuple[int, int]) -> dict[str, Any]:
    info = inspect(src, quick=False)
    if info["integrity"] != ["ok"]:
        raise BackupError(f"{src} fails PRAGMA integrity_check: {'; '.join(info['integrity'][:3])}")
    if info["schema_version"] > SCHEMA_VERSION:
        raise BackupError(
            f"{src} has schema v{info['schema_version']}, newer than this gateway "
            f"(v{SCHEMA_VERSION}): upgrade the gateway first"
        )
    if "punches" not in info["tables"] or "meta" not in info["tables"]:
        raise BackupError(f"{src} is not a gateway punch store (no punches/meta tables)")
    # Prepared beside the target and only then swapped in: a kill -9 before the rename
    # leaves the current store in place, untouched.
    tmp = db.with_name(db.name + ".restoring")
    shutil.copyfile(src, tmp)
    try:
        merged = _merge_current(tmp, db)
        _hand_over(tmp, owner)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    moved: list[str] = []
    aside = db.with_name(f"{db.name}.before-restore-{stamp()}")
    for suffix in ("", "-wal", "-shm"):
        cur = Path(str(db) + suffix)
        if cur.exists():
            target = Path(str(aside) + suffix)
            os.replace(cur, target)
            moved.append(str(target))
    os.replace(tmp, db)
    _fsync_dir(db.parent)
    return {"restored_from": str(src), "db": str(db), "moved_aside": moved, **merged, **info}


def _merge_current(copy: Path, current: Path) -> dict[str, Any]:
    """Bring the copy to this schema, then fold in what the current store must not forget."""
    conn = sqlite3.connect(copy, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = DELETE")  # one self-contained file, like backups
        conn.execute("PRAGMA synchronous = FULL")
        migrate(conn)
        conn.execute("BEGIN IMMEDIATE")
        (backup_next,) = conn.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()
        out = {"next_seq_backup": int(backup_next), "carried_over": 0, "tombstoned": 0}
        cur = _read_current(current) if current.exists() else None
        floor = max(int(backup_next), cur["next_seq"] if cur else 1)
        if cur:
            have = {r[0] for r in conn.execute("SELECT event_id FROM punches")}
            out["tombstoned"] = tombstones.tombstone_ids(
                conn, (e for e, _at in cur["delivered"] if e not in have)
            )
            # Issue 18: a copy made while acks waited for their mark (store/marks.py), or
            # before the broker acked, holds rows the current store delivered: not again.
            conn.executemany(
                "UPDATE punches SET status=1, delivered_at=? WHERE status=0 AND event_id=?",
                [(at, e) for e, at in cur["delivered"] if e in have],
            )
            conn.executemany("INSERT OR IGNORE INTO pruned(h) VALUES (?)", cur["pruned"])
            for row in cur["undelivered"]:
                if row[1] in have:
                    continue
                rec = json.loads(row[3])
                rec["seq"] = floor
                conn.execute(
                    "INSERT INTO punches(seq, event_id, terminal, record, received_at, status,"
                    " dead_reason, attempts) VALUES (?,?,?,?,?,?,?,?)",
                    (floor, row[1], row[2], _ENC.encode(rec), *row[4:]),
                )
                floor += 1
                out["carried_over"] += 1
            audited = {r[0] for r in conn.execute("SELECT event_id FROM manual_audit")}
            conn.executemany(
                "INSERT INTO manual_audit(event_id, terminal, user_id, punch_time, state,"
                " entered_by, reason, entered_at) VALUES (?,?,?,?,?,?,?,?)",
                [a for a in cur["audit"] if a[0] not in audited],
            )
        conn.execute("UPDATE meta SET value=? WHERE key='next_seq'", (str(floor),))
        recount(conn)  # rows carried over here, not through Store
        conn.execute("COMMIT")
        out["next_seq"] = floor
        return out
    except sqlite3.Error as err:
        raise BackupError(f"cannot prepare the restored store: {err}") from err
    finally:
        conn.close()


def _read_current(db: Path) -> dict[str, Any] | None:
    """What the current store knows (read only); None when it cannot be read at all."""
    try:
        # Read-write open, queries only: a read-only open of a WAL file without its -shm
        # can fail, and then the seq floor would be lost. Its -wal/-shm move aside with it.
        conn = sqlite3.connect(db)
        conn.execute("PRAGMA query_only = 1")
    except sqlite3.Error:
        return None
    out: dict[str, Any] = {"next_seq": 1, "delivered": [], "undelivered": [], "pruned": []}
    out["audit"] = []
    queries = {
        "next_seq": "SELECT max(CAST(value AS INTEGER)) FROM meta WHERE key='next_seq'",
        "max_seq": "SELECT max(seq) FROM punches",
        "delivered": "SELECT event_id, delivered_at FROM punches WHERE status=1",
        "undelivered": "SELECT seq, event_id, terminal, record, received_at, status,"
        " dead_reason, attempts FROM punches WHERE status!=1 ORDER BY seq",
        "pruned": "SELECT h FROM pruned",
        "audit": "SELECT event_id, terminal, user_id, punch_time, state, entered_by, reason,"
        " entered_at FROM manual_audit ORDER BY id",
    }
    try:
        for key, sql in queries.items():
            try:
                rows = conn.execute(sql).fetchall()
            except sqlite3.Error:  # an older schema (no pruned table) or a damaged page
                continue
            if key == "next_seq" and rows and rows[0][0]:
                out["next_seq"] = max(out["next_seq"], int(rows[0][0]))
            elif key == "max_seq" and rows and rows[0][0]:
                out["next_seq"] = max(out["next_seq"], int(rows[0][0]) + 1)
            elif key in ("delivered",):
                out[key] = [(r[0], r[1]) for r in rows]
            elif key not in ("next_seq", "max_seq"):
                out[key] = rows
    finally:
        conn.close()
    return out


def store_owner(db: Path) -> tuple[int, int]:
    """Who must own a restored store: the daemon's user and group (issue 12).

    ``sudo gatewayctl restore`` used to leave ``gateway.db`` root-owned 0644, and the daemon
    (``User=attgw``, no capabilities) then failed "attempt to write a readonly database" on
    every start. The owner is the data folder's (``StateDirectory=`` keeps it attgw:attgw),
    not the replaced file's, which an older restore may have left root-owned. Refused before
    anything moves if this process could not give the file to that owner.
    """
    ref = db.parent
    st = ref.stat()
    me = os.geteuid()
    if me not in (0, st.st_uid):
        raise BackupError(
            f"{ref} belongs to uid {st.st_uid}, which the daemon runs as; a file restored by "
            f"uid {me} would be read-only for it: run restore with sudo"
        )
    return st.st_uid, st.st_gid


def _hand_over(path: Path, owner: tuple[int, int]) -> None:
    if os.geteuid() == 0:
        os.chown(path, *owner)
    os.chmod(path, DB_MODE)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
