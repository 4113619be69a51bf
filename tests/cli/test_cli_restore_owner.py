"""Issue 12 (found by make test-systemd): who owns a restored store, and backups' mode.

``sudo gatewayctl restore`` left ``gateway.db`` root-owned 0644 and the daemon (User=attgw)
then failed "attempt to write a readonly database"; backups made by root were 0644. The
container test checks the same with the real unit; these run in plain ``make test``.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import tempfile
from pathlib import Path

import pytest

from gateway.store import backup
from gateway.store.db import Store

NOBODY = 65534


def _make_backup(tmp_path: Path) -> Path:
    with Store(tmp_path / "src.db") as store:
        return Path(backup.backup(store, tmp_path / "copy.db")["path"])


def test_backup_is_never_world_readable(tmp_path: Path) -> None:
    old = os.umask(0o022)  # root's usual umask made 0644 copies
    try:
        copy = _make_backup(tmp_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(copy.stat().st_mode) == 0o640


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_restore_as_root_gives_the_store_to_the_data_folder_owner(tmp_path: Path) -> None:
    copy = _make_backup(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, NOBODY, NOBODY)  # StateDirectory= makes it attgw:attgw
    old = os.umask(0o022)
    try:
        backup.restore(copy, data / "gateway.db")
    finally:
        os.umask(old)
    st = (data / "gateway.db").stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (NOBODY, NOBODY, 0o640)
    with sqlite3.connect(data / "gateway.db") as conn:
        assert conn.execute("PRAGMA quick_check").fetchone() == ("ok",)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_restore_by_another_user_is_refused_before_anything_moves(tmp_path: Path) -> None:
    copy = _make_backup(tmp_path)
    os.chmod(copy, 0o644)
    # pytest's tmp_path is 0700 root: the other user needs a folder it can reach.
    data = Path(tempfile.mkdtemp(prefix="attgw-restore-"))
    os.chmod(data, 0o755)
    shutil.copy(copy, data / "copy.db")
    copy = data / "copy.db"
    os.chmod(copy, 0o644)
    current = data / "gateway.db"
    current.write_bytes(b"current store")
    pid = os.fork()
    if pid == 0:  # a child that is neither root nor the folder's owner
        code = 1
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY - 1)
            backup.restore(copy, current)
        except backup.BackupError as err:
            code = 0 if "run restore with sudo" in str(err) else 2
        except BaseException:
            code = 3
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert current.read_bytes() == b"current store"
    assert sorted(p.name for p in data.iterdir()) == ["copy.db", "gateway.db"]
    shutil.rmtree(data)
