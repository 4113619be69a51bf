"""Issue 7: a tiny filesystem filling up and freed, and a database corrupted between boots,
through the real daemon (the store dir is a real tmpfs with ``size=``; root only)."""

from __future__ import annotations

import json
import os
import sqlite3
import time

import pytest

from tests.chaos.chaoslib import PREFIX, Rig, health, wait_until
from tests.chaos.conftest import fill

pytestmark = [pytest.mark.chaos, pytest.mark.slow]


def _codes(sub) -> set[int]:
    return {f["code"] for f in health(sub)["faults"]}


def test_tiny_filesystem_fills_up_then_frees(tmp_path, tiny_fs, mosquitto, subscriber,
                                            figures):
    data = tiny_fs(4096)
    sub = subscriber(mosquitto.port, "attendance/#")
    rig = Rig(tmp_path, mosquitto.port, zk_records=300, file_lines=100, data_dir=data,
              store={"min_free_disk_mb": 1})
    gw = rig.gateway(ready=True)
    try:
        wait_until(lambda: rig.all_delivered(sub.punches()), 120, "first backlog")
        # 1. Nearly full (under min_free_disk_mb, room left): terminals with a log pause,
        #    the reader's punches are still committed, fault 3.
        filler = fill(data, leave_kb=600)
        low_filler = filler.rename(data / "filler-low.bin")
        wait_until(lambda: 3 in _codes(sub), 30, "fault 3 (disk low)")
        wait_until(lambda: health(sub)["terminals"]["lobby"]["state"] == "paused", 30,
                   "ZK terminal paused")
        zk_before = rig.zk.records
        for _ in range(5):
            rig.punch_once()
            time.sleep(0.2)
        wait_until(lambda: set(rig.cards) <= {p["user_id"] for p in sub.punches()}, 60,
                   "reader punches accepted while space is left")
        # 2. Completely full: no crash; the reader's punches are held in memory.
        full_filler = fill(data)
        deadline = time.monotonic() + 90
        while "held in memory" not in gw.log():  # until SQLite itself reports the disk full
            assert time.monotonic() < deadline, "the disk never became full for SQLite"
            rig.punch_once()
            time.sleep(0.1)
        for _ in range(5):
            rig.punch_once()
            time.sleep(0.2)
        assert gw.running(), "the daemon must survive a full disk"
        # 3. Space returns: everything resumes by itself.
        full_filler.unlink()
        low_filler.unlink()
        t0 = time.monotonic()
        wait_until(lambda: rig.all_delivered(sub.punches()), 180, "all delivered after space")
        recovery = time.monotonic() - t0
        wait_until(lambda: 3 not in _codes(sub), 30, "fault 3 cleared")
        assert rig.zk.records > zk_before
        assert gw.terminate() == 0
        fig = rig.figures(sub.punches())
        assert fig.lost == 0
        assert rig.integrity() == ["ok"]
        figures("tiny filesystem (4 MB tmpfs) filled, then freed", rounds=1,
                produced=fig.produced, delivered=fig.delivered, lost=fig.lost,
                duplicates=fig.duplicates, recovery_s=round(recovery, 1))
    finally:
        rig.close()


def test_corrupt_database_at_start_is_moved_aside_and_refilled(tmp_path, mosquitto, subscriber,
                                                              figures):
    sub = subscriber(mosquitto.port, "attendance/#")
    rig = Rig(tmp_path, mosquitto.port, zk_records=800, file_lines=200)
    gw = rig.gateway(ready=True)
    try:
        for _ in range(10):
            rig.punch_once()
        wait_until(lambda: rig.all_delivered(sub.punches()), 120, "first run delivered")
        assert gw.terminate() == 0
        boot1 = json.loads(sub.retained(f"{PREFIX}/status").payload)["boot_id"]
        zk_ids = {p["event_id"] for p in sub.punches() if p["terminal"] == "lobby"}
        # The pages live in the main file once checkpointed (the WAL's own frames are
        # checksummed: SQLite drops a damaged WAL tail rather than reading garbage).
        with sqlite3.connect(rig.db) as c:
            c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        # Power cut on a lying SD card: pages of the file overwritten with garbage.
        size = os.path.getsize(rig.db)
        with rig.db.open("r+b") as fh:
            for page in range(0, max(1, size // 4096), 3):  # page 0: the header
                fh.seek(page * 4096)
                fh.write(os.urandom(4096))
        sub.clear()
        t0 = time.monotonic()
        gw = rig.gateway(ready=True)
        wait_until(lambda: 4 in _codes(sub), 60, "fault 4 raised")
        quarantined = [p for p in rig.data_dir.iterdir() if ".corrupt-" in p.name]
        assert quarantined, "moved aside, never deleted"
        text = next(f["text"] for f in health(sub)["faults"] if f["code"] == 4)
        assert "moved aside" in text
        wait_until(lambda: zk_ids <= {p["event_id"] for p in sub.punches()}, 120,
                   "ZK log pulled again into the fresh store")
        refill = time.monotonic() - t0
        # Terminals with a log (ZK, the file) refill the store; the reader's punches were
        # delivered before the corruption and have no second copy to re-pull.
        wait_until(lambda: rig.all_delivered(sub.punches(), cards=False), 120,
                   "every log re-pulled and delivered")
        boot2 = json.loads(sub.retained(f"{PREFIX}/status").payload)["boot_id"]
        assert boot2 != boot1
        assert gw.terminate() == 0
        assert rig.integrity() == ["ok"]
        n_logs = len(zk_ids) + len(rig.file_ids)
        figures("corrupt database at start", rounds=1, produced=n_logs, delivered=n_logs,
                lost=0, quarantined=[p.name for p in quarantined],
                recovery_s=round(refill, 1))
    finally:
        rig.close()
