"""Issue 18: delivered marks ride on the next insert's transaction (SD-card wear).

A swipe cost two durable transactions (insert, then delivered mark). Deferred marks are
written inside the next insert or after ``MARK_DELAY_S``; a crash meanwhile only re-sends.
Measured: bytes this process wrote (``/proc/self/io``) for the same swipes with immediate
marks in the same run (a ratio), and the rows' states through a connection of our own.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.pipeline.punch import Punch
from gateway.store import marks
from gateway.store.db import Store


def P(i: int) -> Punch:
    return Punch(event_id=f"0190a8c0-0000-7000-8000-{i:012d}", terminal="reader",
                 driver="virtual", user_id=str(1000 + i % 300),
                 time=datetime(2026, 11, 23, 8, 0, tzinfo=UTC))


@pytest.fixture
def disk_path() -> Iterator[Path]:
    """On the disk: /tmp may be a tmpfs, whose writes /proc/PID/io does not count."""
    with tempfile.TemporaryDirectory(dir="/var/tmp") as d:
        yield Path(d)


def write_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise AssertionError("no write_bytes")


def statuses(db: Path) -> dict[int, int]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
        return dict(c.execute("SELECT seq, status FROM punches"))


def swipes(db: Path, later: bool, n: int = 150) -> float:
    """Bytes written per swipe: one insert, then its ack's mark, like the daemon does."""
    with Store(db) as s:
        s.add([P(i) for i in range(5000)])
        s.mark_delivered(range(1, 5001))
        s._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        w0 = write_bytes()
        for i in range(5000, 5000 + n):
            s.add([P(i)])
            (s.mark_delivered_later if later else s.mark_delivered)([i + 1])
        per = (write_bytes() - w0) / n
    assert set(statuses(db).values()) == {1}  # close() wrote the last mark
    return per


def test_a_swipe_writes_less_with_deferred_marks(disk_path: Path) -> None:
    before = swipes(disk_path / "a.db", later=False)
    after = swipes(disk_path / "b.db", later=True)
    # measured 61.5 -> 41.2 KB per swipe (0.67); the test only asks for a clear cut
    assert after < 0.85 * before, (before, after)


def test_the_mark_rides_on_the_next_insert(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    with Store(db) as s:
        s.add([P(1)])
        assert s.mark_delivered_later([1]) == 0
        assert statuses(db) == {1: 0}  # not written yet: the file's figures say so too
        assert s.figures()["pending"] == 1
        assert 1 in s.unmarked  # but the publisher never leases it again
        s.add([P(2)])
        assert statuses(db) == {1: 1, 2: 0}  # written with the insert of punch 2
        assert s.unmarked == frozenset() and s.marks_waiting == 0
        figs = s.figures()
        assert figs["pending"] == 1 and figs["delivered_today"] == 1


def test_marks_are_written_when_due_or_forced(tmp_path: Path, monkeypatch) -> None:
    db = tmp_path / "g.db"
    with Store(db) as s:
        s.add([P(i) for i in range(10)])
        s.mark_delivered_later([1, 2])
        assert s.flush_marks() == 0 and statuses(db)[1] == 0  # not due yet
        monkeypatch.setattr(marks, "MARK_DELAY_S", 0.0)
        assert s.flush_marks() == 2 and statuses(db)[1] == 1
        monkeypatch.setattr(marks, "MARK_DELAY_S", 3600.0)
        monkeypatch.setattr(marks, "MARK_BATCH", 3)
        assert s.mark_delivered_later([3, 4]) == 0
        assert s.mark_delivered_later([5]) == 3  # the batch is full: written now
        s.mark_delivered_later([6])
        assert s.flush_marks(force=True) == 1
        s.mark_delivered_later([7])
    assert statuses(db)[7] == 1  # close() writes what waits


def test_a_failed_insert_keeps_the_marks(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    with Store(db) as s:
        s.add([P(1)])
        s.mark_delivered_later([1])
        s._conn.execute("CREATE TRIGGER boom BEFORE INSERT ON punches"
                        " BEGIN SELECT RAISE(ABORT, 'disk says no'); END")
        with pytest.raises(Exception, match="disk says no"):
            s.add([P(2)])
        assert 1 in s.unmarked and statuses(db) == {1: 0}  # rolled back with the insert
        s._conn.execute("DROP TRIGGER boom")
        s.add([P(2)])
        assert statuses(db) == {1: 1, 2: 0}
