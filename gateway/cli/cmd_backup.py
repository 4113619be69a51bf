"""``gatewayctl backup [--output FILE]`` and ``gatewayctl restore FILE``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from gateway.cli import local, outfile
from gateway.cli.output import emit_json, json_flag


def register(sub: Any) -> None:
    b = sub.add_parser(
        "backup",
        help="consistent online backup of the punch store",
        description="Copy the punch store with SQLite's online backup API "
        "(consistent even while the daemon writes) and check the copy. Default: "
        "<data_dir>/backups/manual-<UTC time>.db (automatic backups are "
        "gateway-*.db and rotate; manual ones are kept).",
    )
    b.add_argument("--output", "-o", metavar="FILE", help="where to write the copy")
    json_flag(b)
    b.set_defaults(func=_backup)
    r = sub.add_parser(
        "restore",
        help="replace the store with a backup (daemon stopped)",
        description="Replace the punch store with FILE. Refused while the "
        "daemon runs. FILE is checked first (integrity, schema version); the "
        "current database is moved aside as gateway.db.before-restore-<time>, "
        "never deleted.",
    )
    r.add_argument("file", help="a backup made by `gatewayctl backup` or an automatic one")
    json_flag(r)
    r.set_defaults(func=_restore)


def _backup(args: argparse.Namespace) -> int:
    from gateway.store import backup
    from gateway.store.db import Store

    s = local.settings(args)
    if not s.db_path.exists():
        local.fail(args, f"no database at {s.db_path}", 1)
    if args.output:
        dest = outfile.check(args, args.output)  # exit 2 before any work (issue 12)
    else:
        dest = s.data_dir / backup.BACKUP_DIR / f"manual-{backup.stamp()}.db"
        try:  # the default folder is ours (the daemon makes it too): create it if needed
            dest.parent.mkdir(mode=0o750, exist_ok=True)
        except OSError as err:
            outfile.failed(args, dest.parent, err)
    try:
        with Store(s.db_path, readonly=True) as store:
            info = backup.backup(store, dest)
    except OSError as err:
        if err.errno in outfile.PATH_ERRNOS:
            outfile.failed(args, dest, err)
        local.fail(args, f"backup failed: {err}", 1)
    except backup.BackupError as err:
        local.fail(args, f"backup failed: {err}", 1)
    except Exception as err:  # StoreError, sqlite3.Error
        local.fail(args, f"backup failed: {err}", 1)
    if getattr(args, "json", False):
        emit_json(info)
    else:
        p = info["punches"]
        print(
            f"backup written: {info['path']} ({info['bytes'] // 1024} KiB, schema "
            f"v{info['schema_version']}, {sum(p.values())} punches, quick_check ok)"
        )
    return 0


def holders(db: Path) -> list[int]:
    """Processes that have the database open (those we may look at: root sees all)."""
    target = {str(db), str(db) + "-wal"}
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) in target:
                    pids.append(int(entry.name))
                    break
        except OSError:
            continue
    return pids


def _restore(args: argparse.Namespace) -> int:
    from gateway.ops import control_client as control
    from gateway.store import backup

    s = local.settings(args)
    running = control.ping(s.socket)
    if running:
        local.fail(
            args,
            f"the daemon is running (pid {running.get('pid')}): stop it first",
            1,
            "sudo systemctl stop attendance-gateway; then run restore again",
        )
    from gateway.store.lock import LOCK_NAME, holder_pid, is_locked

    if is_locked(s.data_dir):  # issue 13: the daemon's own lock, held for its whole life
        pid = holder_pid(s.data_dir / LOCK_NAME)
        local.fail(
            args,
            f"the daemon is running (pid {pid or '?'} holds {s.data_dir / LOCK_NAME}): "
            "stop it first",
            1,
            "sudo systemctl stop attendance-gateway; then run restore again",
        )
    pids = holders(s.db_path.resolve()) if s.db_path.exists() else []
    if pids:
        local.fail(
            args,
            f"{s.db_path} is open in process(es) {pids}: stop them first",
            1,
            "sudo systemctl stop attendance-gateway",
        )
    from gateway.store.lock import StoreLocked

    try:  # takes the lock for the whole swap: a daemon starting meanwhile refuses to start
        info = backup.restore(args.file, s.db_path)
    except StoreLocked as err:  # issue 13: the daemon's own lock, not only a socket ping
        local.fail(
            args,
            f"the daemon is running ({err}): stop it first",
            1,
            "sudo systemctl stop attendance-gateway; then run restore again",
        )
    except (OSError, backup.BackupError) as err:
        local.fail(args, f"restore refused: {err}", 1)
    if getattr(args, "json", False):
        emit_json(info)
    else:
        print(
            f"restored {info['db']} from {info['restored_from']} (integrity ok, schema "
            f"v{info['schema_version']}, punches {info['punches']})"
        )
        for p in info["moved_aside"]:
            print(f"  previous file kept as {p}")
        print(
            f"  seq continues at {info['next_seq']} (never below what was published);"
            f" {info['carried_over']} undelivered punch(es) carried over from the previous file"
        )
        print("start the daemon: sudo systemctl start attendance-gateway")
    return 0
