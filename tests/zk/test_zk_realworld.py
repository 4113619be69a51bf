"""ZK terminals as they really are (issue 14): device framing split anywhere, 8-byte logs
with user slots, options, a swapped terminal, the light touch, the ff'255' log marker."""

from __future__ import annotations

import struct
from datetime import datetime

import pytest
from conftest import drain, wait_for

from drivers.zk_terminal import codec as c
from drivers.zk_terminal.client import HardenedZK
from drivers.zk_terminal.sim.bulk import DEVICE_CHUNK, tcp_frames
from gateway.errors import DriverError


def test_bulk_answer_is_framed_like_the_pyzk_capture() -> None:
    """The frames of pyzk ``test.py`` ``test_tcp_get_users_broken_tcp`` (5044 bytes)."""
    frames = tcp_frames(0x3C5C, 0x16, bytes(5044))
    prep = c.decode_packet(frames[0][8:])
    assert prep is not None and frames[0][:8].hex() == "5050827d10000000"
    assert (prep.cmd, prep.session, prep.reply) == (c.CMD_PREPARE_DATA, 0x3C5C, 0x16)
    assert prep.payload.hex() == "b4130000f0030000"  # size 5044, chunk size 1008
    data = frames[1:-1]
    assert [len(f) - 16 for f in data] == [DEVICE_CHUNK] * 5 + [4]
    assert [struct.unpack_from("<4H", f, 8)[2:] for f in data] == [(k, 0x16) for k in range(6)]
    ack = c.decode_packet(frames[-1][8:])
    assert ack is not None and (ack.cmd, ack.session, ack.reply) == (c.CMD_ACK_OK, 5, 0x16)
    assert all(c.decode_packet(f[8:]).checksum_ok for f in frames)  # type: ignore[union-attr]


def _ids_now(d) -> set[str]:
    """Everything ``read`` hands out now (``read(0)``: no idle wait after the last batch)."""
    out: set[str] = set()
    while batch := d.read(0.0):
        out |= {p.event_id for p in batch}
    return out


def test_driver_reads_a_bulk_answer_split_at_every_offset(make_sim, make_driver) -> None:
    sim = make_sim(serial="SPLIT01")
    sim.bulk_load(30, users=7)  # 1204-byte dataset: PREPARE_DATA, two DATA frames, ACK_OK
    size = sum(len(f) for f in tcp_frames(1, 1, bytes(4 + 30 * 40)))
    d = make_driver(sim, live=False)
    d.open()
    ids = {p.event_id for p in drain(d)}
    assert len(ids) == 30
    for at in range(1, size):
        sim.inject("segment", at=at, count=1, pause_s=0.001)
        d.pull()
        assert _ids_now(d) == ids, f"split at byte {at}"
    for every in (1, 2, 3, 7, 15, 16, 17, 500, 1023):
        sim.inject("segment", every=every, count=1, pause_s=0)
        d.pull()
        assert _ids_now(d) == ids, f"split every {every} bytes"


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_eight_byte_terminal_maps_slots_to_pins_in_log_and_live(
    make_sim, make_driver, transport: str
) -> None:
    sim = make_sim(record_size=8, serial="BW0000001", first_uid=7, transport=transport)
    assert sim.add_user("1001").uid == 7 and sim.add_user("2002").uid == 8
    t = datetime(2026, 11, 23, 8, 59, 12)
    sim.punch("1001", t, state=0, verify=1)
    assert sim.record_bytes(0)[:4] == bytes.fromhex("07002800")  # fananimi/pyzk#99 layout
    d = make_driver(sim, poll_interval_s=86400, live=True)
    d.open()
    [p] = drain(d)
    assert (p.user_id, p.state, p.verify, p.extra["flags"], p.extra["uid"]) == (
        "1001", "check_in", "fingerprint", 0x28, 7
    )
    assert p.event_id == "zk-BW0000001-1001-20261123T085912-0"
    # live: a 10-byte event names slot 8; a user enrolled after open (slot 9) too
    sim.punch("2002", state=1, verify=4)
    sim.add_user("3003")
    sim.punch("3003", state=0, verify=1)
    live: list = []
    wait_for(lambda: live.extend(d.read(0.2)) or len(live) >= 2, timeout=30)
    assert [(x.user_id, x.state, x.verify, x.extra["via"]) for x in live] == [
        ("2002", "check_out", "card", "live"),
        ("3003", "check_in", "fingerprint", "live"),
    ]
    d.pull()  # the log gives the same ids as the live path
    logged = {x.event_id: x for x in drain(d)}
    assert {x.event_id for x in live} <= set(logged)
    assert all(logged[x.event_id].extra["via"] == "log" for x in live)
    # a deleted user's records keep a stable slot id and are reported, never dropped
    sim.delete_user("2002")
    d.close()
    d.open()
    got = {x.user_id for x in drain(d)}
    assert got == {"1001", "uid:8", "3003"}
    assert any(i["kind"] == "unknown_user" for i in d.probe()["issues"])


def test_swapped_terminal_is_a_fault_and_nothing_is_read(make_sim, make_driver) -> None:
    sim = make_sim(serial="OTHER000009")
    sim.bulk_load(50)
    d = make_driver(sim, live=True, serial_number="A8N5192060011")
    with pytest.raises(DriverError) as ei:
        d.open()
    assert ei.value.fault == 1
    assert "OTHER000009" in str(ei.value) and "A8N5192060011" in str(ei.value)
    assert c.CMD_PREPARE_BUFFER not in sim.commands and c.CMD_REG_EVENT not in sim.commands
    with pytest.raises(DriverError):
        d.read(0.1)
    ok = make_driver(sim, live=False, serial_number="OTHER000009")
    ok.open()
    assert len(drain(ok)) == 50


def test_terminal_answers_the_options_real_terminals_answer(make_sim, make_driver) -> None:
    tft, bw = make_sim(), make_sim(record_size=8)
    for sim, width, ssr in ((tft, "9", "1"), (bw, "5", "0")):
        z = HardenedZK("127.0.0.1", sim.port, 5, 0, False)
        z.connect()
        try:
            assert z.option("~PIN2Width") == width and z.option("~SSR") == ssr
            assert z.option("~OEMVendor") == "ZKTeco Inc."
            assert datetime.fromisoformat(z.option("~ProductTime")).year == 2016
            with pytest.raises(ValueError):
                z.option("~NoSuchOption")
        finally:
            z.disconnect()
    d = make_driver(tft, live=False)
    d.open()
    assert d.probe()["~OEMVendor"] == "ZKTeco Inc."


def test_light_touch_downloads_only_when_something_changed(make_sim, make_driver) -> None:
    sim = make_sim()
    sim.bulk_load(2000)
    d = make_driver(sim, poll_interval_s=86400, live=True)
    d.open()
    assert len(drain(d)) == 2000

    def downloads() -> int:
        return list(sim.commands).count(c.CMD_PREPARE_BUFFER)

    before = downloads()
    d._next_poll = 0.0  # nothing new: the count check alone
    assert drain(d) == [] and downloads() == before
    assert d.probe()["light_touch"]["last_check"] == "unchanged"
    sim.punch("1001", state=0)  # delivered live at once...
    [live] = wait_for(lambda: d.read(0.2), timeout=30)
    d._next_poll = 0.0  # ...and the next poll reads only the new record (the same punch)
    assert [p.event_id for p in drain(d)] == [live.event_id]
    assert downloads() == before + 1 and d.last_download["tail_bytes"] == 4096 + 2 * 40
    sim.bulk_load(3)  # records live events did not deliver
    d._next_poll = 0.0
    assert len(drain(d)) == 3 and downloads() == before + 2
    d._next_poll = 0.0
    assert drain(d) == [] and downloads() == before + 2
    d._touch.last_full = -1e9  # the safety period has passed: the whole log, though unchanged
    d._next_poll = 0.0
    assert drain(d) == [] and downloads() == before + 3
    assert d.last_download["why"] == "safety period" and d.last_download["tail_bytes"] is None


def test_full_download_interval_zero_downloads_every_poll(make_sim, make_driver) -> None:
    sim = make_sim()
    sim.bulk_load(100)
    d = make_driver(sim, live=False, full_download_interval_s=0)
    d.open()
    drain(d)
    n = list(sim.commands).count(c.CMD_PREPARE_BUFFER)
    for _ in range(3):
        d._next_poll = 0.0
        assert drain(d) == []
    assert list(sim.commands).count(c.CMD_PREPARE_BUFFER) == n + 3


@pytest.mark.parametrize("rs", [40, 49, 16])
def test_log_with_leading_marker_is_decoded_and_reported(make_sim, make_driver, rs) -> None:
    sim = make_sim(record_size=rs, log_marker=True)
    sim.bulk_load(123)
    d = make_driver(sim, live=False)
    d.open()
    got = drain(d)
    assert len({p.event_id for p in got}) == 123
    assert {p.user_id for p in got} <= {str(1001 + i) for i in range(50)}
    assert any(i["kind"] == "marker" for i in d.probe()["issues"])


def test_doctor_names_a_swapped_terminal(make_sim, make_driver) -> None:
    sim = make_sim(serial="OTHER000009")
    d = make_driver(sim, serial_number="A8N5192060011")
    diag = d.diagnose()
    assert (diag.verdict, diag.fault) == ("fail", 1)
    assert "OTHER000009" in diag.detail and "A8N5192060011" in diag.detail
    assert make_driver(sim, serial_number="OTHER000009").diagnose().verdict == "ok"


def test_new_options_are_parsed_and_checked() -> None:
    from drivers.zk_terminal.options import ZkOptions, parse_options
    from gateway.config.validate import Fields
    from gateway.errors import ConfigIssue

    issues: list[ConfigIssue] = []
    o = parse_options(
        Fields(
            {"host": "h", "serial_number": " A8N5192060011 ", "full_download_interval_s": 3600},
            "terminals[0]",
            issues,
        )
    )
    assert o == ZkOptions("h", serial_number="A8N5192060011", full_download_interval_s=3600)
    assert parse_options(Fields({"host": "h"}, "terminals[0]", issues)) == ZkOptions("h")
    assert ZkOptions("h").full_download_interval_s == 21600 and issues == []
    bad = parse_options(
        Fields(
            {"host": "h", "serial_number": "", "full_download_interval_s": -1},
            "terminals[2]",
            issues,
        )
    )
    assert bad is None
    assert {i.path for i in issues} == {
        "terminals[2].serial_number",
        "terminals[2].full_download_interval_s",
    }


@pytest.mark.parametrize(("transport", "marker"), [("tcp", False), ("udp", False), ("tcp", True)])
def test_tail_read_fetches_only_the_new_records(make_sim, make_driver, transport, marker) -> None:
    sim = make_sim(transport=transport, log_marker=marker)
    sim.bulk_load(5000)
    d = make_driver(sim, live=False, poll_interval_s=86400)
    d.open()
    first = {p.event_id for p in drain(d)}
    assert len(first) == 5000
    for round_ in range(2):
        for u in ("2001", "2002", "2003"):
            sim.punch(u, state=round_)
        sent = sim._server.bytes_sent
        d._next_poll = 0.0
        new = drain(d)
        assert sorted(p.user_id for p in new) == ["2001", "2002", "2003"]
        assert not {p.event_id for p in new} & first
        assert d.last_download["tail_bytes"] == 4096 + 4 * 40  # head, boundary, 3 new
        assert sim._server.bytes_sent - sent < 20_000  # the whole log is 200 000 bytes
        assert d.last_download["records"] == 5003 + 3 * round_
    d._touch.last_full = -1e9  # the safety-period download reads the whole log
    d._next_poll = 0.0
    assert drain(d) == [] and d.last_download["tail_bytes"] is None
    assert d.last_download["already_committed"] == 5006  # whole prefix re-checked: intact
    d.pull()  # a full download still finds the same log, prefix and tail
    assert len({p.event_id for p in drain(d)}) == 5006


def test_tail_read_notices_a_rotated_log(make_sim, make_driver) -> None:
    sim = make_sim(capacity=3000, full_policy="cyclic", cyclic_delete=100)
    sim.bulk_load(3000)
    d = make_driver(sim, live=False, poll_interval_s=86400)
    d.open()
    drain(d)
    sim.punch("2001")  # the terminal deletes its 100 oldest records first
    d._next_poll = 0.0
    got = drain(d)
    assert len(got) == 2901 and d.last_download["tail_bytes"] is None
    assert any("shrank" in w for w in d.status()["warnings"])
    assert d._tail_reads  # the terminal did nothing wrong


def test_terminal_without_arbitrary_ranged_reads_gets_whole_downloads(make_sim, make_driver):
    sim = make_sim()
    sim.bulk_load(3000)
    sim.inject("grid_reads_only")
    d = make_driver(sim, live=False, poll_interval_s=86400)
    d.open()
    assert len(drain(d)) == 3000
    for u in ("2001", "2002"):
        sim.punch(u)
        d._next_poll = 0.0
        assert [p.user_id for p in drain(d)] == [u]
        assert d.last_download["tail_bytes"] is None
    assert not d._tail_reads  # after the first check failed on an intact log


def test_small_log_answered_at_once_is_read_whole(make_sim, make_driver) -> None:
    sim = make_sim()
    sim.bulk_load(10)  # 404 bytes: the terminal answers the prepare with the data at once
    d = make_driver(sim, live=False, poll_interval_s=86400)
    d.open()
    assert len(drain(d)) == 10
    sim.punch("2001")
    d._next_poll = 0.0
    assert [p.user_id for p in drain(d)] == ["2001"]
    assert d.last_download["tail_bytes"] is None and d._tail_reads
