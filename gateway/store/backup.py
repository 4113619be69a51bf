"""Backups of the punch store: online copies, automatic rotation, and a careful restore.

* :func:`backup` copies through SQLite's online backup API (``Store.backup_to``), so it is
  consistent even while the daemon writes; the copy is written beside its final name, checked
  with ``PRAGMA quick_check``, fsynced, then renamed into place (a half-written file never
  carries a backup's name).
* :func:`automatic` is the daemon's ``Periodic`` task: one copy every ``backup_interval_h``
  into ``<data_dir>/backups/``, keeping the newest ``backup_keep``.
* :func:`restore` refuses while a daemon runs, checks the file (integrity, schema version,
  tables) first, and moves the current database aside with a timestamp: nothing is deleted.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.store.db import Store
from gateway.store.schema import SCHEMA_VERSION

BACKUP_DIR = "backups"
PREFIX = "gateway-"
BACKUP_MODE = 0o640
#: The store's mode as the daemon creates it (the unit's UMask=0027).
DB_MODE = 0o640


class BackupError(Exception):
    """A backup or restore could not be done; the message says what to do."""


def stamp(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def backup(store: Store, dest: str | os.PathLike[str]) -> dict[str, Any]:
    """Copy ``store`` to ``dest`` consistently; return what was written."""
    final = Path(dest)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(final.name + ".partial")
    tmp.unlink(missing_ok=True)
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
        # Employee data: never world-readable, whoever runs it (root's umask gave 0644, issue
        # 12). The group comes from the backups folder (setgid attgw, tmpfiles.d).
        os.chmod(tmp, BACKUP_MODE)
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


def automatic(store: Store, data_dir: str | os.PathLike[str], keep: int) -> Path:
    """The daemon's periodic backup: a new copy, then rotation to ``keep`` copies."""
    folder = Path(data_dir) / BACKUP_DIR
    dest = folder / f"{PREFIX}{stamp()}.db"
    backup(store, dest)
    rotate(folder, keep)
    return dest


def rotate(folder: Path, keep: int) -> list[Path]:
    """Delete the oldest automatic backups beyond ``keep`` (names sort by time)."""
    copies = sorted(folder.glob(f"{PREFIX}*.db"))
    doomed = copies[: max(0, len(copies) - keep)]
    for p in doomed:
        p.unlink(missing_ok=True)
    return doomed


def restore(source: str | os.PathLike[str], db_path: str | os.PathLike[str]) -> dict[str, Any]:
    """Put ``source`` in place of ``db_path`` (the daemon must be stopped: the caller checks).

    The current database and its ``-wal``/``-shm`` move together to
    ``gateway.db.before-restore-<UTC time>`` so a kill -9 leftover WAL stays with its file.
    """
    src, db = Path(source), Path(db_path)
    owner = store_owner(db)
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
    moved: list[str] = []
    aside = db.with_name(f"{db.name}.before-restore-{stamp()}")
    for suffix in ("", "-wal", "-shm"):
        cur = Path(str(db) + suffix)
        if cur.exists():
            target = Path(str(aside) + suffix)
            os.replace(cur, target)
            moved.append(str(target))
    tmp = db.with_name(db.name + ".restoring")
    shutil.copyfile(src, tmp)
    _hand_over(tmp, owner)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, db)
    _fsync_dir(db.parent)
    return {"restored_from": str(src), "db": str(db), "moved_aside": moved, **info}


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
