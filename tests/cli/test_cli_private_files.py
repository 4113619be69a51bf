"""Issue 12: files with employee data are private, and a bad output path is one line.

Backups (``gatewayctl backup``, the daemon's automatic ones), exports (``queue export``) and
support bundles are created 0600 even under the usual umask 022; an existing, looser file
at the output path is replaced by a private one, not rewritten in place. A path that
cannot work (missing folder, a directory, no permission) exits 2 with one line, no
traceback, and no directory is created for it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.pipeline.punch import Punch
from gateway.store import backup
from gateway.store.db import Store
from gateway.store.guard import open_store
from tests.pipeline.harness import write_config


@pytest.fixture(autouse=True)
def _umask_022() -> Iterator[None]:
    """The usual login umask: files are 0644 unless created private (children inherit it)."""
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    store, _ = open_store(data / "gateway.db")
    with store:
        store.add([Punch(event_id=f"e{i}", terminal="lobby", driver="virtual", user_id="1001",
                         time=datetime(2026, 11, 23, 8, i, tzinfo=UTC)) for i in range(5)])
    return write_config(
        tmp_path / "gw.toml",
        gateway={"data_dir": str(data), "control_socket": str(tmp_path / "c.sock")},
        mqtt={"host": "127.0.0.1", "port": 1},
        terminals=[{"name": "lobby", "driver": "virtual"}],
    )


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def one_line_error(r) -> None:
    assert r.rc == 2, (r.rc, r.out, r.err)
    assert "Traceback" not in r.err and len(r.err.strip().splitlines()) == 1, r.err


def test_backup_export_bundle_are_created_0600(tmp_path: Path, cfg: Path, ctl) -> None:
    made = {
        "backup": tmp_path / "copy.db",
        "export": tmp_path / "punches.csv",
        "bundle": tmp_path / "support.tar.gz",
    }
    made["export"].write_text("an older, world-readable file\n")
    made["export"].chmod(0o644)
    assert ctl(cfg, "backup", "--output", str(made["backup"])).rc == 0
    r = ctl(cfg, "queue", "export", "--since", "2000-01-01", "--output", str(made["export"]))
    assert r.rc == 0, r.err
    assert made["export"].read_text().count("\n") == 6  # header + 5 punches: replaced whole
    assert ctl(cfg, "bundle", "--output", str(made["bundle"])).rc == 0, "bundle"
    default = ctl(cfg, "backup", "--json")
    assert default.rc == 0, default.err
    made["default backup"] = Path(default.json()["path"])
    for what, path in made.items():
        # backups: 0640 at most (group attgw may read them, the limit; i12b),
        # exports and bundles: owner only
        want = 0o640 if "backup" in what else 0o600
        assert mode(path) == want, (what, oct(mode(path)))
    assert not list(tmp_path.glob("*.partial"))


def test_automatic_backups_are_0640(tmp_path: Path) -> None:
    with Store(tmp_path / "gateway.db") as store:
        dest = backup.automatic(store, tmp_path, keep=3)
    assert mode(dest) == 0o640 and mode(dest.parent) == 0o750


@pytest.mark.parametrize("command", ["backup", "export", "bundle"])
def test_bad_output_paths_are_one_line_and_exit_2(
    tmp_path: Path, cfg: Path, ctl, command: str
) -> None:
    argv = {
        "backup": ["backup"],
        "export": ["queue", "export", "--since", "2000-01-01"],
        "bundle": ["bundle"],
    }[command]
    missing = tmp_path / "no" / "such" / "dir" / "out.file"
    r = ctl(cfg, *argv, "--output", str(missing))
    one_line_error(r)
    assert "does not exist" in r.err
    assert not (tmp_path / "no").exists(), "a directory nobody asked for was created"

    folder = tmp_path / "a-folder"
    folder.mkdir()
    r = ctl(cfg, *argv, "--output", str(folder))
    one_line_error(r)
    assert "is a directory" in r.err and list(folder.iterdir()) == []

    # Not writable even by root: the error is still one line.
    r = ctl(cfg, *argv, "--output", "/proc/gateway-out.file")
    one_line_error(r)
    assert "/proc/gateway-out.file" in r.err

    if os.geteuid() != 0:  # root may write anywhere: only a plain user sees EACCES
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        r = ctl(cfg, *argv, "--output", str(locked / "out.file"))
        one_line_error(r)
        assert "permission" in r.err

    r = ctl(cfg, *argv, "--output", str(missing), "--json")  # --json: the error as JSON
    assert r.rc == 2 and r.json()["ok"] is False and "does not exist" in r.json()["error"]
