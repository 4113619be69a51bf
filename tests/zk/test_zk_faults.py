"""Every simulator fault: every good record kept, the bad one reported, the driver recovers.

Recovery means what the runner does: a ``DriverError(fault=1)``, then ``close()``/``open()``.
"""

from __future__ import annotations

import threading
import time

import pytest
from conftest import drain, wait_for

from gateway.errors import DriverError

N = 3000


def _reopen_until_ok(d, attempts: int = 5) -> list:
    for _ in range(attempts):
        d.close()
        try:
            d.open()
        except DriverError:
            continue
        return drain(d)
    raise AssertionError("driver never recovered")


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_drop_mid_download(make_sim, make_driver, transport: str) -> None:
    sim = make_sim(transport=transport)
    sim.bulk_load(N)
    sim.inject("drop_mid_download", after=20_000)
    d = make_driver(sim, live=False, timeout_s=1.0)
    with pytest.raises(DriverError) as ei:
        d.open()
    assert ei.value.fault == 1
    got = _reopen_until_ok(d)
    assert len({p.event_id for p in got}) == N


def test_split_tcp_replies(make_sim, make_driver) -> None:
    sim = make_sim()
    sim.bulk_load(N)
    sim.inject("split_replies", count=-1, pause_s=0.02)
    d = make_driver(sim, live=True)
    d.open()
    assert len(drain(d)) == N
    sim.punch("1009")
    got = wait_for(lambda: d.read(0.2), timeout=30)
    assert [p.user_id for p in got] == ["1009"]


@pytest.mark.parametrize("fault", ["corrupt_record", "invalid_date"])
def test_bad_record_is_reported_and_skipped(make_sim, make_driver, fault: str) -> None:
    sim = make_sim()
    sim.bulk_load(N)
    raw_before = sim.record_bytes(1234)
    sim.inject(fault, index=1234)
    d = make_driver(sim, live=False)
    d.open()
    got = drain(d)
    assert len(got) == N - 1
    st = d.status()
    assert st["bad_records"] == 1
    assert any("unreadable" in w for w in st["warnings"])
    [issue] = [i for i in d.probe()["issues"] if i["index"] == 1234]
    assert issue["raw"] == sim.record_bytes(1234).hex() != raw_before.hex()
    assert issue["kind"] == ("corrupt" if fault == "corrupt_record" else "invalid_date")
    d.pull()
    drain(d)
    assert d.status()["bad_records"] == 1  # the same bad record is counted once


def test_year_2000_record_is_kept_and_flagged(make_sim, make_driver) -> None:
    sim = make_sim()
    sim.bulk_load(100)
    sim.inject("clock_reset_record", index=7)
    d = make_driver(sim, live=False)
    d.open()
    got = drain(d)
    assert len(got) == 100
    [p] = [p for p in got if p.time.year == 2000]
    assert p.clock_synced is False and p.extra["suspect"] == "clock_reset"
    assert d.status()["suspect_records"] == 1 and d.status()["bad_records"] == 0


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_reboot_is_detected_and_punches_during_it_reconciled(
    make_sim, make_driver, transport: str
) -> None:
    sim = make_sim(transport=transport)
    sim.bulk_load(200)
    d = make_driver(sim, poll_interval_s=86400, live=True, timeout_s=1.0)
    d.open()
    drain(d)
    sim.reboot(downtime_s=0.3)
    sim.punch("1050")  # made while the driver's sessions are gone

    def broken() -> bool:
        try:
            d.read(0.2)
        except DriverError as err:
            assert err.fault == 1
            return True
        return False

    wait_for(broken, timeout=30)
    got = _reopen_until_ok(d)
    assert "1050" in {p.user_id for p in got}
    assert len(got) == 201


def test_slow_answers_within_timeout_still_work(make_sim, make_driver) -> None:
    sim = make_sim()
    sim.bulk_load(500)
    sim.inject("slow", delay_s=0.2, count=-1)
    d = make_driver(sim, live=False, timeout_s=2.0)
    d.open()
    assert len(drain(d)) == 500


def test_hung_terminal_raises_then_recovers(make_sim, make_driver) -> None:
    sim = make_sim()
    sim.bulk_load(500)
    d = make_driver(sim, poll_interval_s=86400, live=True, timeout_s=0.5)
    d.open()
    drain(d)
    sim.inject("hang")

    def broken() -> bool:
        try:
            d.read(0.2)
        except DriverError as err:
            return err.fault == 1
        return False

    wait_for(broken, timeout=30)
    sim.clear_faults()
    assert len(_reopen_until_ok(d)) == 500


def test_hung_terminal_during_open_times_out(make_sim, make_driver) -> None:
    sim = make_sim()
    sim.inject("slow", delay_s=3.0, count=-1)
    d = make_driver(sim, live=False, timeout_s=0.5)
    with pytest.raises(DriverError) as ei:
        d.open()
    assert ei.value.fault == 1
    sim.clear_faults()


@pytest.mark.parametrize("policy", ["refuse", "cyclic"])
def test_log_full(make_sim, make_driver, policy: str) -> None:
    sim = make_sim(capacity=100, full_policy=policy, cyclic_delete=10)
    sim.bulk_load(100)
    d = make_driver(sim, live=False)
    d.open()
    assert len(drain(d)) == 100
    assert "full" in d.status()["fault"]
    accepted = sim.punch("1999")
    assert accepted is (policy == "cyclic")
    d.pull()
    got = drain(d)
    assert ("1999" in {p.user_id for p in got}) is (policy == "cyclic")
    assert len(got) == (91 if policy == "cyclic" else 100)


def test_short_download_is_retried(make_sim, make_driver) -> None:
    sim = make_sim()
    sim.bulk_load(N)
    sim.inject("short_download", missing=7, times=2)
    d = make_driver(sim, live=False)
    d.open()
    assert len(drain(d)) == N
    assert d.last_download["attempts"] == 3


def test_short_download_that_persists_is_kept_and_reported(make_sim, make_driver) -> None:
    sim = make_sim()
    sim.bulk_load(N)
    sim.inject("short_download", missing=7, times=-1)
    d = make_driver(sim, live=False)
    d.open()
    assert len(drain(d)) == N - 7
    assert any("download short" in w for w in d.status()["warnings"])


def test_zero_records_reported_does_not_hide_the_log(make_sim, make_driver) -> None:
    sim = make_sim()
    sim.bulk_load(N)
    sim.inject("zero_records", times=1)
    d = make_driver(sim, live=False)
    d.open()
    assert len(drain(d)) == N


def test_punches_during_a_long_download_are_not_lost(make_sim, make_driver) -> None:
    sim = make_sim()
    sim.bulk_load(20_000)
    d = make_driver(sim, poll_interval_s=86400, live=True)
    stop = threading.Event()

    def punch() -> None:
        i = 0
        while not stop.wait(0.01) and i < 50:
            sim.punch(str(3000 + i))
            i += 1

    th = threading.Thread(target=punch, name="test-punch-during-download")
    th.start()
    d.open()
    ids = {p.event_id for p in drain(d)}
    th.join()
    stop.set()
    # no pull: what the download did not contain must come through the live session
    deadline = time.monotonic() + 30
    while len(ids) < 20_050 and time.monotonic() < deadline:
        ids |= {p.event_id for p in d.read(0.2)}
    assert len(ids) == sim.records == 20_050


def test_lost_live_session_is_reopened_without_a_reconnect(make_sim, make_driver) -> None:
    sim = make_sim()
    d = make_driver(sim, poll_interval_s=86400, live=True, timeout_s=1.0)
    d.open()
    drain(d)
    sim.inject("kick_live")
    sim.punch("1077")  # its live event is lost with the session; the reconcile has it
    got: list = []
    wait_for(lambda: got.extend(d.read(0.2)) or got, timeout=30)
    assert [p.user_id for p in got] == ["1077"]
    assert d.probe()["live"] is True
    sim.punch("1078")
    got = wait_for(lambda: d.read(0.2), timeout=30)
    assert [(p.user_id, p.extra["via"]) for p in got] == [("1078", "live")]
