"""Issue 13 in the store: tombstones, trigger-kept figures, manual punch + audit in one
transaction (fault injection by kill -9), restore that never rewinds seq, the daemon's lock,
readers and backups that never wait behind a writer."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.pipeline.punch import Punch
from gateway.store import backup
from gateway.store.db import DuplicatePunch, Store
from gateway.store.lock import StoreLock, StoreLocked, is_locked
from gateway.store.schema import MIGRATIONS, recount
from tests.pipeline.harness import FakeClock, wait_until


def P(i: int | str, terminal: str = "t") -> Punch:
    return Punch(event_id=f"zk-SN-{i}", terminal=terminal, driver="zk", user_id="7",
                 time=datetime(2026, 11, 23, 8, 0, tzinfo=UTC))


def manual(user: str = "1001", reason: str = "forgot card") -> Punch:
    return Punch(event_id=f"manual-{user}-{reason}", terminal="t", driver="manual",
                 user_id=user, time=datetime(2026, 11, 23, 8, 59, tzinfo=UTC),
                 state="check_in", state_code=0, verify="manual", source="manual",
                 entered_by="tech", reason=reason)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "gateway.db", clock=FakeClock())
    yield s
    s.close()


def _truth(store: Store) -> tuple[int, int]:
    rows = dict(store.query("SELECT status, count(*) FROM punches GROUP BY status"))
    return rows.get(0, 0), rows.get(2, 0)


def test_pruned_records_never_come_back(store):
    store.add([P(i) for i in range(100)])
    store.mark_delivered(range(1, 101))
    store.clock.t += timedelta(days=31)
    assert store.prune(30) == 100
    assert store.query("SELECT count(*) FROM pruned") == [(100,)]
    # A terminal's full log read again, plus one new record: only the new one is stored.
    assert store.add([P(i) for i in range(101)]) == 1
    assert store.query("SELECT seq, event_id FROM punches") == [(101, "zk-SN-100")]
    assert store.add([P(5)]) == 0 and store.figures()["last_seq"] == 101


def test_prune_keeps_pending_and_dead_and_stops_when_asked(store):
    store.add([P(i) for i in range(10)])
    store.mark_delivered([1, 2, 3])
    store.dead_letter([4], "refused")
    store.clock.t += timedelta(days=31)
    assert store.prune(30, should_stop=lambda: True) == 0
    assert store.prune(30) == 3
    assert store.figures()["pending"] == 6 and store.figures()["dead_lettered"] == 1


def test_figures_are_counters_that_match_the_rows(store, tmp_path):
    store.add([P(i) for i in range(50)])
    store.mark_delivered(range(1, 21))
    store.dead_letter([21, 22], "refused")
    store.requeue(since=store.clock.t - timedelta(hours=1))
    store.requeue(dead=True)
    store.mark_delivered(range(1, 31))
    f = store.figures()
    assert (f["pending"], f["dead_lettered"]) == _truth(store) == (20, 0)
    assert f["delivered_today"] == 30 and f["resent_today"] == 20 and f["received_today"] == 50
    store.clock.t += timedelta(days=31)
    assert store.prune(30) == 30
    f = store.figures()
    assert (f["pending"], f["dead_lettered"]) == _truth(store) == (20, 0)
    assert store.query("SELECT stored, last_seq FROM terminal_stats") == [(20, 50)]
    # Writers that bypass Store (guard's salvage, restore) recount in their transaction.
    raw = sqlite3.connect(tmp_path / "gateway.db", isolation_level=None)
    raw.execute("BEGIN IMMEDIATE")
    raw.execute("UPDATE punches SET status=2 WHERE seq > 45")
    recount(raw)
    raw.execute("COMMIT")
    raw.close()
    f = store.figures()
    assert (f["pending"], f["dead_lettered"]) == _truth(store) == (15, 5)


def test_migration_to_v3_counts_existing_rows(tmp_path):
    path = tmp_path / "old.db"
    c = sqlite3.connect(path, isolation_level=None)
    for stmt in MIGRATIONS[0] + MIGRATIONS[1]:
        c.execute(stmt)
    c.execute("PRAGMA user_version = 2")
    for seq, status in ((1, 0), (2, 1), (3, 2), (4, 0)):
        c.execute("INSERT INTO punches(seq,event_id,terminal,record,received_at,status) "
                  "VALUES (?,?,'t','{}','2026-01-01T00:00:00.000Z',?)", (seq, f"x{seq}", status))
    c.execute("UPDATE meta SET value='5' WHERE key='next_seq'")
    c.close()
    with Store(path) as s:
        f = s.figures()
        assert (f["pending"], f["dead_lettered"], f["last_seq"]) == (2, 1, 4)
        assert s.query("SELECT stored, last_seq FROM terminal_stats") == [(4, 4)]


def test_manual_duplicate_is_refused_and_writes_nothing(store):
    seq = store.add_manual(manual())
    assert seq == 1
    with pytest.raises(DuplicatePunch, match="identical manual punch"):
        store.add_manual(manual(reason="entered again, other words"))
    assert store.query("SELECT count(*) FROM manual_audit") == [(1,)]
    assert store.figures()["last_seq"] == 1
    assert store.add_manual(manual(user="1002")) == 2  # another employee is fine


_KILL_AT = """
import os, signal, sys
from datetime import UTC, datetime
from gateway.pipeline.punch import Punch
from gateway.store.db import Store
store = Store(sys.argv[1])
point = sys.argv[2]
def trace(sql):
    if point in sql:
        os.kill(os.getpid(), signal.SIGKILL)  # kill -9, right there
store._conn.set_trace_callback(trace)
store.add_manual(Punch(event_id="manual-k", terminal="t", driver="manual", user_id="9",
    time=datetime(2026, 11, 23, 8, 0, tzinfo=UTC), state="check_in", source="manual",
    verify="manual", entered_by="tech", reason="test"))
print("done")
"""


@pytest.mark.parametrize("point", ["INSERT INTO manual_audit", "COMMIT", "never-matches"])
def test_kill_between_manual_insert_and_audit_leaves_both_or_neither(tmp_path, point):
    db = tmp_path / "gateway.db"
    Store(db).close()
    proc = subprocess.run([sys.executable, "-c", _KILL_AT, str(db), point],
                          capture_output=True, text=True, timeout=60)
    killed = proc.returncode == -signal.SIGKILL
    assert killed == (point != "never-matches"), proc.stderr
    with Store(db) as s:
        punches = s.query("SELECT count(*) FROM punches WHERE event_id='manual-k'")[0][0]
        audits = s.query("SELECT count(*) FROM manual_audit WHERE event_id='manual-k'")[0][0]
        assert punches == audits, f"killed at {point!r}: {punches} punch(es), {audits} audit(s)"
        assert s.figures()["pending"] == punches and s.integrity_check() == ["ok"]


def test_restore_never_rewinds_seq_and_keeps_what_only_the_current_store_has(tmp_path):
    db = tmp_path / "gateway.db"
    with Store(db, clock=FakeClock()) as s:
        s.add([P(i) for i in range(10)])
        s.mark_delivered(range(1, 11))
        backup.backup(s, tmp_path / "old.db")
        s.add([P(i) for i in range(10, 15)])  # seq 11..15, delivered
        s.mark_delivered(range(11, 16))
        serial = Punch(event_id="serial-1", terminal="door", driver="serial", user_id="c1",
                       time=datetime(2026, 11, 23, 9, 0, tzinfo=UTC))
        s.add([serial])  # seq 16, pending: exists nowhere else
        s.add_manual(manual())  # seq 17 + its audit
    info = backup.restore(tmp_path / "old.db", db)
    assert info["next_seq"] == 20 and info["carried_over"] == 2 and info["tombstoned"] == 5
    with Store(db) as s:
        assert s.add([P(i) for i in range(16)]) == 1  # 11..14 were published: tombstoned
        rows = s.query("SELECT seq, event_id, status FROM punches WHERE seq > 10 ORDER BY seq")
        assert rows == [(18, "serial-1", 0), (19, "manual-1001-forgot card", 0),
                        (20, "zk-SN-15", 0)]
        assert s.query("SELECT count(*) FROM manual_audit") == [(1,)]
        import json
        assert json.loads(s.pending(17, 1)[0].record)["seq"] == 18  # the wire JSON agrees


def test_restore_refused_while_the_lock_is_held_by_another_process(tmp_path):
    db = tmp_path / "gateway.db"
    with Store(db) as s:
        s.add([P(1)])
        backup.backup(s, tmp_path / "b.db")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from gateway.store.lock import StoreLock;"
         f"StoreLock({str(tmp_path)!r}).acquire(); print('held', flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert is_locked(tmp_path)
        with pytest.raises(StoreLocked, match=f"process {holder.pid}"):
            backup.restore(tmp_path / "b.db", db)
        assert not list(tmp_path.glob("gateway.db.before-restore-*"))  # nothing touched
    finally:
        holder.kill()
        holder.wait(10)
    wait_until(lambda: not is_locked(tmp_path), 30, "the lock released by the kernel")
    assert backup.restore(tmp_path / "b.db", db)["next_seq"] == 2


def test_lock_is_exclusive_within_one_process_too(tmp_path):
    a = StoreLock(tmp_path).acquire()
    with pytest.raises(StoreLocked, match=str(os.getpid())):
        StoreLock(tmp_path).acquire()
    a.release()
    with StoreLock(tmp_path) as b:
        assert b.held


def test_readers_and_backups_do_not_wait_behind_a_writer(store, tmp_path):
    store.add([P(i) for i in range(1000)])
    inside, release = threading.Event(), threading.Event()

    def long_insert() -> None:  # holds the writer lock and SQLite's write lock
        with store._write() as conn:
            conn.execute("INSERT INTO meta(key, value) VALUES ('x', 'y')")
            inside.set()
            release.wait(120)

    writer = threading.Thread(target=long_insert, name="test-writer")
    writer.start()
    try:
        assert inside.wait(30)
        done: dict[str, object] = {}

        def read() -> None:
            done["figures"] = store.figures()
            done["pending"] = store.pending(0, 5)
            store.backup_to(tmp_path / "copy.db")
            done["backup"] = True

        reader = threading.Thread(target=read, name="test-reader")
        reader.start()
        wait_until(lambda: "backup" in done, 60, "reads and a backup while the writer is busy")
        assert done["figures"]["pending"] == 1000  # type: ignore[index]
    finally:
        release.set()
        writer.join(30)
    with Store(tmp_path / "copy.db", readonly=True) as copy:
        assert copy.figures()["pending"] == 1000


def test_backup_file_is_self_contained(store, tmp_path):
    store.add([P(i) for i in range(10)])
    info = backup.backup(store, tmp_path / "b.db")
    assert info["integrity"] == ["ok"] and not Path(str(tmp_path / "b.db") + "-wal").exists()


def test_corrupt_store_salvage_keeps_tombstones_and_counts(tmp_path):
    from gateway.store import guard

    db = tmp_path / "gateway.db"
    with Store(db, clock=FakeClock()) as s:
        s.add([P(i) for i in range(30)])
        s.mark_delivered(range(1, 21))
        s.clock.t += timedelta(days=31)
        assert s.prune(30) == 20
        s.add([P(i) for i in range(30, 35)])  # 31..35 pending
        s.mark_delivered([31])  # delivered, not pruned
    # What open_store does with a corrupt file, step by step on a readable one.
    q = guard._quarantine(db, "test", FakeClock())
    Store(db).close()
    guard._seed(db, q, guard._salvage(q.moved_to))
    with Store(db) as store:
        assert (store.figures()["pending"], store.figures()["dead_lettered"]) == _truth(store)
        assert store.figures()["pending"] == 14  # 21..30 and 32..35
        # Pruned and delivered records read again from a terminal are not new punches.
        assert store.add([P(i) for i in range(31)]) == 0
        assert store.figures()["last_seq"] == 35
