"""ZkDriver over real sockets against the simulator: completeness, dedup, live, clock, capacity."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from conftest import TZ, FakeSync, drain, wait_for

from drivers.zk_terminal.driver import ZkDriver, ZkOptions
from gateway.config.validate import Fields
from gateway.errors import ConfigIssue, DriverError
from gateway.pipeline.driver import Driver
from gateway.store.db import Store


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_50k_log_arrives_complete_and_rereads_add_nothing(
    make_sim, make_driver, tmp_path, transport: str
) -> None:
    sim = make_sim(transport=transport, serial="A8N5192060011")
    sim.bulk_load(50_000, users=200)
    d = make_driver(sim, poll_interval_s=3600, live=False)
    store = Store(tmp_path / "q.db")
    try:
        d.open()
        got = drain(d)
        assert len(got) == 50_000
        ids = {p.event_id for p in got}
        assert len(ids) == 50_000
        assert store.add(got) == 50_000
        assert d.status()["log_records"] == 50_000
        d.pull()  # a full re-read: every record handed out again, none new to the store
        again = drain(d)
        assert {p.event_id for p in again} == ids
        assert store.add(again) == 0
        d.close()
        d.open()  # a reconnect reconciles again
        assert store.add(drain(d)) == 0
    finally:
        store.close()


def test_punch_shape_event_id_and_timezone(make_sim, make_driver) -> None:
    sim = make_sim(serial="A8N5192060011")
    sim.punch("1001", datetime(2026, 11, 23, 8, 59, 12), state=0, verify=1)
    d = make_driver(sim, live=False)
    d.open()
    [p] = drain(d)
    assert p.event_id == "zk-A8N5192060011-1001-20261123T085912-0"
    assert p.time.isoformat() == "2026-11-23T08:59:12+08:00"
    assert (p.state, p.state_code, p.verify, p.verify_code) == ("check_in", 0, "fingerprint", 1)
    assert p.terminal == "lobby" and p.terminal_sn == "A8N5192060011" and p.driver == "zk"
    assert p.extra["record_size"] == 40
    assert isinstance(d, Driver)


@pytest.mark.parametrize("rs", [16, 49, 8])
def test_other_layouts_keep_state_and_verify_apart(make_sim, make_driver, rs: int) -> None:
    sim = make_sim(record_size=rs)
    sim.punch("1001", datetime(2026, 3, 4, 5, 6, 7), state=1, verify=4)
    d = make_driver(sim, live=False)
    d.open()
    [p] = drain(d)
    assert (p.state, p.verify, p.extra["record_size"]) == ("check_out", "card", rs)


def test_reads_are_bounded_and_a_poll_only_hands_out_new_records(make_sim, make_driver) -> None:
    sim = make_sim()
    sim.bulk_load(12_000)
    d = make_driver(sim, poll_interval_s=3600, live=False)
    d.open()
    sizes = []
    while batch := d.read(0.05):
        sizes.append(len(batch))
    assert sizes == [5000, 5000, 2000]
    sim.punch("2001")
    d._next_poll = 0.0  # poll now (instead of waiting an hour)
    new = drain(d)
    assert [p.user_id for p in new] == ["2001"]
    assert d.last_download["already_committed"] == 12_000


def test_live_events_arrive_between_polls(make_sim, make_driver) -> None:
    sim = make_sim()
    d = make_driver(sim, poll_interval_s=86400, live=True)
    d.open()
    assert drain(d) == []
    t = sim.now()
    sim.punch("1001", state=1, verify=15)
    got = wait_for(lambda: d.read(0.2), timeout=30)
    assert [(p.user_id, p.state, p.verify, p.extra["via"]) for p in got] == [
        ("1001", "check_out", "face", "live")
    ]
    assert got[0].time.replace(tzinfo=None) == t or abs(
        got[0].time.replace(tzinfo=None) - t
    ) <= timedelta(seconds=1)
    # the same punch read from the log later has the same event_id
    d.pull()
    assert [p.event_id for p in drain(d)] == [got[0].event_id]


def test_punch_made_while_disconnected_is_reconciled_on_reopen(make_sim, make_driver) -> None:
    sim = make_sim()
    d = make_driver(sim, poll_interval_s=86400, live=True)
    d.open()
    drain(d)
    d.close()
    sim.punch("1007", state=0)
    d.open()
    assert [p.user_id for p in drain(d)] == ["1007"]


def test_coalesced_live_events_are_all_taken(make_sim, make_driver) -> None:
    sim = make_sim()
    d = make_driver(sim, poll_interval_s=86400)
    d.open()
    drain(d)
    sim.inject("coalesce_events")
    for u in ("1001", "1002", "1003"):
        sim.punch(u)
    got: list = []
    wait_for(lambda: got.extend(d.read(0.2)) or len(got) >= 3, timeout=30)
    assert sorted(p.user_id for p in got) == ["1001", "1002", "1003"]


def test_clock_set_only_when_pi_is_synced(make_sim, make_driver) -> None:
    for source, expect_set in ((None, False), (FakeSync(False), False), (FakeSync(True), True)):
        sim = make_sim(clock_offset_s=-3600)
        d = make_driver(sim, time_sync=source, live=False)
        d.open()
        skew = d.status()["clock_skew_s"]
        assert skew is not None
        if expect_set:
            assert abs(skew) <= 2
            assert abs((sim.now() - datetime.now(TZ).replace(tzinfo=None)).total_seconds()) <= 2
        else:
            assert skew <= -3598
            assert any("not NTP-synchronised" in w for w in d.status()["warnings"])
            assert d.sync_clock()["done"] is False
            assert sim.now() < datetime.now(TZ).replace(tzinfo=None) - timedelta(minutes=59)
        d.close()


def test_clock_flag_on_punches_follows_measured_skew(make_sim, make_driver) -> None:
    sim = make_sim(clock_offset_s=600)
    sim.punch("1001")
    sync = FakeSync(True)
    d = make_driver(sim, time_sync=sync, live=False, max_clock_skew_s=60, sync_clock=False)
    d.open()
    assert [p.clock_synced for p in drain(d)] == [False]
    assert any("sync_clock is off" in w for w in d.status()["warnings"])
    sim.set_clock(datetime.now(TZ).replace(tzinfo=None))
    d.pull()
    assert [p.clock_synced for p in drain(d)] == [True]
    sync.value = False  # the Pi lost NTP: its skew figure means nothing any more
    d.pull()
    assert [p.clock_synced for p in drain(d)] == [False]
    # a technician's sync_clock is refused from an unsynced Pi, done from a synced one
    sim.shift_clock(900)
    assert d.sync_clock()["done"] is False
    sync.value = True
    r = d.sync_clock()
    assert r["done"] is True and abs(r["skew_after_s"]) <= 2


def test_capacity_warning_and_fault(make_sim, make_driver) -> None:
    sim = make_sim(capacity=100)
    sim.bulk_load(85)
    d = make_driver(sim, live=False)
    d.open()
    st = d.status()
    assert st["log_usage"] == 0.85 and "fault" not in st
    assert any("85% full" in w for w in st["warnings"])
    sim.bulk_load(12)
    d.pull()
    st = d.status()
    assert "97% full" in st["fault"]
    assert sim.commands.count(15) == 0 and sim.commands.count(14) == 0  # never clears


def test_comm_key(make_sim, make_driver) -> None:
    sim = make_sim(comm_key=4242)
    sim.punch("1001")
    good = make_driver(sim, password=4242)
    good.open()
    assert len(drain(good)) == 1
    bad = make_driver(sim, password=1)
    with pytest.raises(DriverError) as ei:
        bad.open()
    assert ei.value.fault == 1
    assert "4242" not in repr(good.opts)


def test_unreachable_terminal_and_unopened_driver(make_driver, make_sim) -> None:
    sim = make_sim()
    d = make_driver(sim, live=False)
    sim.stop()
    assert d.status()["connected"] is False and d.probe()["issues"] == []
    with pytest.raises(DriverError) as ei:
        d.open()
    assert ei.value.fault == 1
    d.close()
    d.close()
    with pytest.raises(DriverError):
        d.read(0.1)


def test_parse_options() -> None:
    issues: list[ConfigIssue] = []
    opts = ZkDriver.parse_options(
        Fields({"host": "10.0.0.5", "transport": "udp", "password": 12}, "terminals[0]", issues)
    )
    assert opts == ZkOptions("10.0.0.5", 4370, "udp", 12)
    assert issues == []
    bad = ZkDriver.parse_options(
        Fields({"port": 0, "transport": "x", "live": "yes"}, "terminals[1]", issues)
    )
    assert bad is None
    assert {i.path for i in issues} == {
        "terminals[1].host",
        "terminals[1].port",
        "terminals[1].transport",
        "terminals[1].live",
    }


def test_probe_has_details(make_sim, make_driver) -> None:
    sim = make_sim(serial="S1", firmware="Ver 6.60 Oct 8 2019", platform="ZMM200_TFT")
    sim.bulk_load(10)
    d = make_driver(sim)
    d.open()
    drain(d)
    p = d.probe()
    assert p["firmware"] == "Ver 6.60 Oct 8 2019" and p["platform"] == "ZMM200_TFT"
    assert p["sizes"]["rec_cap"] == 100_000 and p["record_size"] == 40 and p["live"] is True
    assert p["frames"]
