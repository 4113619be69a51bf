"""Issue 2: the SQLite store — gap-free seq, idempotent inserts, states, migrations."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from gateway.pipeline.punch import Punch
from gateway.store.db import Store
from gateway.store.schema import MIGRATIONS, SCHEMA_VERSION, migrate
from tests.pipeline.harness import FakeClock


def P(i: int | str, terminal: str = "t") -> Punch:
    return Punch(event_id=f"e{i}", terminal=terminal, driver="virtual", user_id="7",
                 time=datetime(2026, 11, 23, 8, 0, tzinfo=UTC))


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "g.db", clock=FakeClock())
    yield s
    s.close()


def test_seq_is_gap_free_across_duplicates(store):
    assert store.add([P(1), P(2), P(1), P(3)]) == 3
    assert store.add([P(2), P(4), P(3), P(5)]) == 2
    seqs = [r[0] for r in store.query("SELECT seq FROM punches ORDER BY seq")]
    assert seqs == [1, 2, 3, 4, 5]
    assert store.figures()["last_seq"] == 5


def test_seq_survives_pruning_everything(store):
    store.add([P(1), P(2)])
    store.mark_delivered([1, 2])
    store.clock.t += timedelta(days=40)
    assert store.prune(30) == 2
    store.add([P(3)])
    assert store.query("SELECT seq FROM punches") == [(3,)]  # never reused


def test_lifecycle_pending_delivered_dead_requeue(store):
    store.add([P(i) for i in range(10)])
    assert [r.seq for r in store.pending(0, 3)] == [1, 2, 3]
    assert [r.seq for r in store.pending(3, 3)] == [4, 5, 6]
    assert store.mark_delivered([1, 2, 3]) == 3
    assert store.mark_delivered([1]) == 0  # idempotent
    assert store.dead_letter([4], "Not authorized") == 1
    f = store.figures()
    assert f["pending"] == 6 and f["delivered_today"] == 3 and f["dead_lettered"] == 1
    assert store.requeue(dead=True) == 1
    assert store.requeue(since=store.clock.t - timedelta(hours=1)) == 3
    assert store.figures()["pending"] == 10


def test_record_is_the_wire_json(store):
    import json

    store.add([P(1)])
    rec = json.loads(store.pending()[0].record)
    assert rec["seq"] == 1 and rec["received_at"] == "2026-11-23T01:00:00.000Z"
    assert rec["time"] == "2026-11-23T08:00:00+00:00"


def test_oldest_pending_age(store):
    store.add([P(1)])
    store.clock.t += timedelta(seconds=90)
    store.add([P(2)])
    assert store.figures()["oldest_pending_age_s"] == 90.0


def test_readonly_second_process_reads_figures_while_writer_open(store, tmp_path):
    store.add([P(i) for i in range(5)])
    code = (
        "from gateway.store.db import Store; s = Store(r'%s', readonly=True);"
        "print(s.figures()['pending'])" % (tmp_path / "g.db")
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30, check=True)
    assert out.stdout.strip() == "5"


def test_migrations_from_v1_keep_data(tmp_path):
    path = tmp_path / "old.db"
    c = sqlite3.connect(path, isolation_level=None)
    for stmt in MIGRATIONS[0]:
        c.execute(stmt)
    c.execute("PRAGMA user_version = 1")
    c.execute("INSERT INTO punches(seq,event_id,terminal,record,received_at) "
              "VALUES (1,'x','t','{}','2026-01-01T00:00:00.000Z')")
    c.execute("UPDATE meta SET value='2' WHERE key='next_seq'")
    c.close()
    s = Store(path)
    assert s.query("PRAGMA user_version")[0][0] == SCHEMA_VERSION
    assert s.figures()["pending"] == 1
    assert s.add([P("new")]) == 1
    assert s.query("SELECT max(seq) FROM punches") == [(2,)]
    s.close()


def test_newer_schema_is_refused(tmp_path):
    c = sqlite3.connect(tmp_path / "n.db", isolation_level=None)
    c.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(sqlite3.DatabaseError, match="newer"):
        migrate(c)


def test_wal_and_full_sync(store):
    assert store.query("PRAGMA journal_mode") == [("wal",)]
    assert store.query("PRAGMA synchronous") == [(2,)]  # FULL
    assert store.integrity_check() == ["ok"]


def test_backup_is_consistent(store, tmp_path):
    store.add([P(i) for i in range(100)])
    store.backup_to(tmp_path / "b.db")
    b = Store(tmp_path / "b.db", readonly=True)
    assert b.figures()["pending"] == 100 and b.integrity_check() == ["ok"]


def test_fast_path_falls_back_when_a_later_punch_is_stored(store):
    store.add([P(1), P(2)])
    assert store.add([P(9), P(1), P(8), P(2)]) == 2  # first new, later ones stored already
    assert store.query("SELECT seq, event_id FROM punches ORDER BY seq") == [
        (1, "e1"), (2, "e2"), (3, "e9"), (4, "e8")]


def test_wire_json_equals_the_record():
    import json

    from gateway.pipeline.punch import Punch

    manual = Punch(event_id='m"1é\n', terminal="t", driver="zk", user_id="7",
                   time=datetime(2026, 11, 23, 8, 0, tzinfo=UTC), source="manual",
                   entered_by="bob", reason="forgot\tcard 补卡", extra={"a": [1, "x"]},
                   state_code=None, verify_code=4)
    for p in (P(1), manual):
        assert json.loads(p.to_json(7, "r")) == {**p.to_record(), "seq": 7, "received_at": "r"}
