"""Issue 18: automatic backups only when due and when the store changed (SD-card wear).

An idle gateway wrote 42 MB/hour, almost all of it the full copy made ~60 s after every
start. Counted here: copies in the backups folder and bytes this process wrote
(``/proc/self/io``), against a copy made in the same run; no timing.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.pipeline.punch import Punch
from gateway.store import backup
from gateway.store.db import Store


def P(i: int) -> Punch:
    return Punch(event_id=f"e{i}", terminal="t", driver="virtual", user_id="7",
                 time=datetime(2026, 11, 23, 8, 0, tzinfo=UTC))


@pytest.fixture
def disk_path() -> Iterator[Path]:
    """A folder on the disk (/tmp may be a tmpfs, whose writes /proc/PID/io does not count)."""
    with tempfile.TemporaryDirectory(dir="/var/tmp") as d:
        yield Path(d)


def copies(data: Path) -> list[Path]:
    return sorted((data / "backups").glob("gateway-*.db"))


def age(path: Path, hours: float) -> None:
    t = time.time() - hours * 3600
    os.utime(path, (t, t))


def write_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise AssertionError("no write_bytes")


def test_no_copy_while_the_newest_is_younger_than_the_interval(tmp_path: Path) -> None:
    with Store(tmp_path / "gateway.db") as store:
        store.add([P(i) for i in range(50)])
        first = backup.automatic(store, tmp_path, keep=7, interval_h=24)
        assert first is not None and copies(tmp_path) == [first]  # none yet: one now
        store.add([P(i) for i in range(50, 60)])  # changed, but the copy is fresh
        # a restart of the daemon runs the task again: it must not copy (was: every start)
        assert backup.automatic(store, tmp_path, keep=7, interval_h=24) is None
        age(first, 23)
        assert backup.automatic(store, tmp_path, keep=7, interval_h=24) is None
        age(first, 25)
        time.sleep(1.05)  # copies are named by the second
        second = backup.automatic(store, tmp_path, keep=7, interval_h=24)
        assert second is not None and len(copies(tmp_path)) == 2
        assert backup.inspect(second)["punches"] == {"pending": 60}


def test_no_copy_when_nothing_changed_and_it_writes_nothing(disk_path: Path) -> None:
    tmp_path = disk_path
    with Store(tmp_path / "gateway.db") as store:
        store.add([P(i) for i in range(2000)])
        store.mark_delivered(range(1, 1001))
        w0 = write_bytes()
        first = backup.automatic(store, tmp_path, keep=7, interval_h=24)
        copy_bytes = write_bytes() - w0  # the baseline: what one copy writes
        assert first is not None and copy_bytes > 100_000
        age(first, 48)
        w0 = write_bytes()
        assert backup.automatic(store, tmp_path, keep=7, interval_h=24) is None
        skipped = write_bytes() - w0
        assert skipped * 100 < copy_bytes, (skipped, copy_bytes)
        assert copies(tmp_path) == [first]


def test_each_kind_of_change_makes_the_next_copy(tmp_path: Path) -> None:
    """Deliveries, dead letters, re-sends and manual punches all count as changes."""
    with Store(tmp_path / "gateway.db") as store:
        store.add([P(i) for i in range(10)])
        changes = [
            lambda: store.mark_delivered([1, 2]),
            lambda: store.dead_letter([3], "refused"),
            lambda: store.requeue(dead=True),
            lambda: store.requeue(),  # delivered 1, 2 pending again
            lambda: store.mark_delivered([1, 2]),  # same counts as before: daily.resent moves
            lambda: store.add([P(99)]),
        ]
        made = [backup.automatic(store, tmp_path, keep=20, interval_h=1)]
        for change in changes:
            for p in copies(tmp_path):
                age(p, 2)
            assert backup.automatic(store, tmp_path, keep=20, interval_h=1) is None
            change()
            time.sleep(1.05)  # copies are named by the second
            made.append(backup.automatic(store, tmp_path, keep=20, interval_h=1))
            assert made[-1] is not None
        assert len(copies(tmp_path)) == len(changes) + 1


def test_an_unreadable_newest_copy_is_replaced(tmp_path: Path) -> None:
    with Store(tmp_path / "gateway.db") as store:
        store.add([P(1)])
        first = backup.automatic(store, tmp_path, keep=7, interval_h=1)
        assert first is not None
        first.write_bytes(b"not a database")
        age(first, 2)
        time.sleep(1.05)
        assert backup.automatic(store, tmp_path, keep=7, interval_h=1) is not None


def test_without_an_interval_every_call_copies(tmp_path: Path) -> None:
    """``gatewayctl``-style callers (no interval) keep the old behaviour."""
    with Store(tmp_path / "gateway.db") as store:
        assert backup.automatic(store, tmp_path, keep=7) is not None
        time.sleep(1.05)
        assert backup.automatic(store, tmp_path, keep=7) is not None
    assert len(copies(tmp_path)) == 2


def test_a_copy_dated_in_the_future_does_not_stop_backups(tmp_path: Path) -> None:
    """A Pi without a clock battery can date a copy years ahead before NTP syncs."""
    with Store(tmp_path / "gateway.db") as store:
        store.add([P(1)])
        first = backup.automatic(store, tmp_path, keep=7, interval_h=24)
        assert first is not None
        age(first, -24 * 365)  # a year in the future
        store.add([P(2)])
        time.sleep(1.05)
        second = backup.automatic(store, tmp_path, keep=7, interval_h=24)
        assert second is not None
        # the copy made with the right time is the reference now: no hourly copies
        store.add([P(3)])
        assert backup.automatic(store, tmp_path, keep=7, interval_h=24) is None
