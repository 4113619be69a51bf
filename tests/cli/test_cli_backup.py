"""backup while the daemon writes, restore refused while it runs, round trip when stopped,
automatic backups with rotation, resend and export against a stopped daemon."""

from __future__ import annotations

import csv
import io
import sqlite3
import time
from pathlib import Path

from gateway.store import backup
from gateway.store.db import Store
from tests.cli.conftest import start_and_wait
from tests.pipeline.harness import wait_until, write_punch_file


def test_backup_restore_round_trip(tmp_path, mosquitto, gateway_factory, ctl):
    log = tmp_path / "lobby.jsonl"
    write_punch_file(log, 20)
    gp = start_and_wait(gateway_factory(
        mqtt={"host": "127.0.0.1", "port": mosquitto.port},
        terminals=[{"name": "lobby", "driver": "virtual", "file": str(log)}]))
    cfg = gp.config
    wait_until(lambda: ctl(cfg, "queue", "--json").json()["last_seq"] == 20, 30, "20 punches")
    copy = tmp_path / "copy.db"
    r = ctl(cfg, "backup", "--output", str(copy), "--json")
    assert r.rc == 0, r.err
    assert r.json()["integrity"] == ["ok"] and sum(r.json()["punches"].values()) == 20
    default = ctl(cfg, "backup")  # default place: <data_dir>/backups/manual-*.db
    assert default.rc == 0 and "/backups/manual-" in default.out

    refused = ctl(cfg, "restore", str(copy))
    assert refused.rc == 1 and "daemon is running" in refused.err
    write_punch_file(log, 5, start=20)  # more punches after the backup
    wait_until(lambda: ctl(cfg, "queue", "--json").json()["last_seq"] == 25, 30, "25 punches")
    wait_until(lambda: ctl(cfg, "queue", "--json").json()["pending"] == 0, 30, "all delivered")
    assert gp.terminate() == 0

    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"SQLite format 3\x00" + b"\x07" * 5000)
    bad = ctl(cfg, "restore", str(corrupt))
    assert bad.rc == 1 and "restore refused" in bad.err
    r = ctl(cfg, "restore", str(copy), "--json")
    assert r.rc == 0, r.err
    aside = [Path(p) for p in r.json()["moved_aside"]]
    assert aside and aside[0].exists()
    with sqlite3.connect(aside[0]) as old:  # the replaced database is kept, whole
        assert old.execute("SELECT count(*) FROM punches").fetchone() == (25,)
    # Issue 13: seq never rewinds (21..25 were published already): the next punch gets 26.
    assert ctl(cfg, "queue", "--json").json()["last_seq"] == 25
    assert r.json()["next_seq"] == 26 and r.json()["tombstoned"] == 5

    # Stopped daemon: resend goes straight to the database; export sees everything.
    r = ctl(cfg, "queue", "resend", "--since", "2000-01-01T00:00", "--json")
    assert r.rc == 0 and r.json() == {"requeued": 20, "via": "database"}
    out = ctl(cfg, "queue", "export", "--since", "2000-01-01", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out.out)))
    assert out.rc == 0 and len(rows) == 20 and rows[0]["seq"] == "1"
    assert {r["status"] for r in rows} == {"pending"} and rows[0]["terminal"] == "lobby"
    peek = ctl(cfg, "queue", "peek", "--limit", "3", "--json").json()
    assert [p["seq"] for p in peek["pending"]] == [1, 2, 3] and peek["dead"] == []


def test_automatic_backup_rotation(tmp_path):
    with Store(tmp_path / "gateway.db") as store:
        made = []
        for _ in range(4):
            made.append(backup.automatic(store, tmp_path, keep=2))
            time.sleep(1.05)  # names carry the second
        (tmp_path / "backups" / "manual-x.db").write_bytes(b"")  # manual copies are kept
    left = sorted(p.name for p in (tmp_path / "backups").iterdir())
    assert left == sorted([made[2].name, made[3].name, "manual-x.db"])
    assert backup.inspect(made[3])["integrity"] == ["ok"]
