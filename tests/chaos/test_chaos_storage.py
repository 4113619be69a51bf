"""Issue 7, self-healing storage, in process with real parts: a real SQLite file corrupted on
disk, a real tmpfs filled to the last byte, a real serial reader on a pty, real runners."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from drivers.serial_reader.driver import SerialDriver
from drivers.serial_reader.sim import ReaderSim
from drivers.virtual import VirtualDriver, VirtualOptions
from gateway.appliance.health import HealthModel
from gateway.config.validate import Fields
from gateway.errors import StoreError
from gateway.pipeline.driver import DriverContext
from gateway.pipeline.punch import Punch
from gateway.pipeline.runner import TerminalRunner
from gateway.store.db import Store
from gateway.store.guard import StorageGuard, acknowledge, is_disk_full, open_store
from tests.chaos.conftest import fill
from tests.pipeline.harness import wait_until, write_config

TZ = ZoneInfo("Asia/Shanghai")
pytestmark = pytest.mark.chaos


def _punch(i: int, terminal: str = "door") -> Punch:
    return Punch(event_id=f"ev-{i:06d}", terminal=terminal, driver="serial", user_id=str(i),
                 time=datetime(2026, 11, 23, 8, 0, tzinfo=UTC), state="check_in", state_code=0,
                 verify="card", verify_code=4)


def _filled_store(db: Path, n: int = 2000, delivered: int = 500) -> None:
    with Store(db) as s:
        s.add([_punch(i) for i in range(n)])
        s.mark_delivered(range(1, delivered + 1))
    with sqlite3.connect(db) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _gatewayctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True,
                          text=True, timeout=60, check=False)


def _quarantined(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if ".corrupt-" in p.name)


def test_garbage_file_moved_aside_never_deleted(tmp_path):
    db = tmp_path / "gateway.db"
    db.write_bytes(os.urandom(64 * 1024))  # "file is not a database"
    original = db.read_bytes()
    store, q = open_store(db)
    with store:
        assert q is not None and "not a database" in q.reason
        files = _quarantined(tmp_path)
        assert [f.read_bytes() for f in files if not f.name.endswith(("-wal", "-shm"))] == [
            original
        ]
        assert files[0].name.startswith("gateway.db.corrupt-2")
        assert files[0].name.endswith("Z")
        assert store.integrity_check() == ["ok"]
        assert store.add([_punch(1)]) == 1
        assert store.figures()["last_seq"] == 1  # nothing readable: seq restarts at 1
        fault = StorageGuard(store).fault()
        assert fault and files[0].name in fault


@pytest.mark.parametrize("page", [3, 5, 10, 40])
def test_damaged_page_salvages_what_it_can_and_seq_continues(tmp_path, page):
    db = tmp_path / "gateway.db"
    _filled_store(db)
    with db.open("r+b") as fh:
        fh.seek((page - 1) * 4096)
        fh.write(os.urandom(4096))
    store, q = open_store(db)
    with store:
        assert q is not None
        assert _quarantined(tmp_path)
        assert q.last_seq == 2000, "seq continues after the highest seq ever issued"
        kept = store.query("SELECT seq, event_id, status FROM punches ORDER BY seq")
        assert len(kept) == q.salvaged_rows
        # Only pending rows were salvaged, each with its original seq and event id.
        assert all(s > 500 and e == f"ev-{s - 1:06d}" and st == 0 for s, e, st in kept)
        store.add([_punch(9999)])
        assert store.figures()["last_seq"] == 2001
        assert store.integrity_check() == ["ok"]


def test_truncated_file_is_quarantined(tmp_path):
    db = tmp_path / "gateway.db"
    _filled_store(db)
    with db.open("r+b") as fh:
        fh.truncate(os.path.getsize(db) // 3)
    store, q = open_store(db)
    with store:
        assert q is not None
        assert store.integrity_check() == ["ok"]


def test_healthy_store_untouched_and_newer_schema_not_quarantined(tmp_path):
    db = tmp_path / "gateway.db"
    _filled_store(db, 10, 0)
    store, q = open_store(db)
    store.close()
    assert q is None and not _quarantined(tmp_path)
    with sqlite3.connect(db) as c:
        c.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="newer"):
        open_store(db)
    assert not _quarantined(tmp_path), "a downgrade is not corruption: never moved aside"


def test_quarantine_fault_survives_restart_until_acknowledged(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    db = data / "gateway.db"
    db.write_bytes(b"garbage" * 1000)
    store, _q = open_store(db)
    store.close()
    store, q2 = open_store(db)  # the next boot: the store is healthy, the fault stays
    with store:
        assert q2 is None
        assert StorageGuard(store).fault() is not None
    cfg = write_config(tmp_path / "gw.toml", gateway={"data_dir": str(data)},
                       mqtt={"host": "127.0.0.1", "port": 1883}, terminals=[])
    # as a technician types it (issue 11: the CLI owns the commands, not the module)
    show = _gatewayctl("--config", str(cfg), "storage", "show")
    assert show.returncode == 1, show
    assert "gatewayctl storage ack" in show.stdout
    ack = _gatewayctl("--config", str(cfg), "storage", "ack")
    assert ack.returncode == 0, ack
    assert "acknowledged" in ack.stdout
    with Store(db) as s:
        assert StorageGuard(s).fault() is None
        assert not acknowledge(s)
    assert _quarantined(data), "acknowledging never deletes the evidence"


# -- disk full -------------------------------------------------------------------------------
def _serial_driver(port: str, clock=None) -> SerialDriver:
    issues: list = []
    opts = SerialDriver.parse_options(
        Fields({"port": port, "framing": "em4100", "debounce_s": 0}, "terminals[0]", issues))
    assert opts is not None, issues
    return SerialDriver("door", opts, DriverContext("gw-test", TZ))


def test_serial_punches_held_while_disk_full_then_committed(tiny_fs):
    """A reader keeps no log: a batch that cannot be committed stays in memory, the runner
    reads nothing more, fault 3 is shown, and the batch lands once space returns."""
    d = tiny_fs(1024)
    store = Store(d / "gateway.db")
    store.add([_punch(0)])
    sim = ReaderSim("em4100", seed=1)
    sim.start()
    runner = TerminalRunner(_serial_driver(sim.path), store)
    runner.start()
    try:
        wait_until(lambda: runner.state.state == "online", 20, "reader open")
        filler = fill(d)
        cards = [f"{0x0100000000 + i:010X}" for i in range(40)]
        for card in cards:
            sim.swipe(card)
            time.sleep(0.01)
        wait_until(lambda: runner.state.fault == 3, 30, "fault 3 while the disk is full")
        assert "held in memory" in (runner.state.detail or "")
        assert store.figures()["pending"] == 1
        filler.unlink()
        wait_until(lambda: store.figures()["pending"] == 41, 60, "held punches committed")
        wait_until(lambda: runner.state.state == "online", 30, "back online")
        users = {r[0] for r in store.query(
            "SELECT json_extract(record, '$.user_id') FROM punches WHERE terminal='door'")}
        assert len(users) == 40
        assert store.integrity_check() == ["ok"]
    finally:
        runner.stop()
        sim.close()
        store.close()


def test_disk_low_pauses_log_keeping_terminals_and_resumes(tiny_fs, tmp_path):
    """Below ``min_free_disk_mb``: a terminal with a log is paused (it keeps its log), a
    reader without one goes on, fault 3 is raised; both resume by themselves."""
    d = tiny_fs(4096)
    store = Store(d / "gateway.db")
    health = HealthModel(gateway_id="gw", boot_id="b", store=store, publisher=None,
                         terminals=lambda: [r.state for r in runners],
                         time_sync=type("S", (), {"synced": lambda self: True})(),
                         clock=store.clock, data_dir=str(d), min_free_disk_mb=1)
    ctx = DriverContext("gw-test", TZ, data_dir=str(d))
    log = tmp_path / "log.jsonl"
    log.write_text("".join(f'{{"user_id": "{i}", "state": 0}}\n' for i in range(5)))
    zkish = VirtualDriver("zkish", VirtualOptions(file=str(log), serial="Z"), ctx)
    reader = VirtualDriver("reader", VirtualOptions(keeps_log=False, serial="R"), ctx)
    def may(drv):
        return not (drv.keeps_log and health.disk_low())  # as in gateway/appliance/daemon.py
    runners = [TerminalRunner(drv, store, may_pull=may) for drv in (zkish, reader)]
    filler = fill(d, leave_kb=512)  # under 1 MB free: disk low, but room left
    for r in runners:
        r.start()
    try:
        wait_until(lambda: runners[0].state.state == "paused", 20, "log terminal paused")
        assert any(f["code"] == 3 for f in health.snapshot()["faults"])
        VirtualDriver.feed("reader", "4242")
        wait_until(lambda: store.figures()["pending"] == 1, 20, "reader punch committed")
        time.sleep(1.5)
        assert store.figures()["pending"] == 1, "the paused terminal must not be pulled"
        filler.unlink()
        wait_until(lambda: store.figures()["pending"] == 6, 30, "log pulled after space returns")
        assert runners[0].state.state == "online"
        assert not any(f["code"] == 3 for f in health.snapshot()["faults"])
    finally:
        for r in runners:
            r.stop()
        store.close()


def test_mark_delivered_on_full_disk_never_raises_and_is_retried(tiny_fs):
    d = tiny_fs(1024)
    store = Store(d / "gateway.db")
    store.add([_punch(i) for i in range(20)])
    filler = fill(d)
    try:
        # fill up the WAL too: keep adding until SQLite itself says full
        with pytest.raises(StoreError) as err:
            for i in range(100, 100000, 50):
                store.add([_punch(j) for j in range(i, i + 50)])
        assert is_disk_full(err.value)
        pending = store.figures()["pending"]
        assert store.mark_delivered(range(1, 11)) == 0  # deferred, not raised
        assert store.figures()["pending"] == pending
        filler.unlink()
        assert store.mark_delivered([11]) == 11  # the deferred ten go with it
        assert store.figures()["pending"] == pending - 11
    finally:
        store.close()
