"""The listener with a real runner and store, driven by simulated terminals over real HTTP."""

from __future__ import annotations

import json
import socket
from datetime import datetime, timedelta

import pytest

from drivers.adms import protocol as p
from drivers.adms.hub import STATE_FILE
from gateway.store.schema import recount
from tests.adms import fixtures as fx
from tests.pipeline.harness import wait_until


def _raw(port: int, request: bytes, source: str = "127.0.0.2") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=20,
                                  source_address=(source, 0)) as s:
        s.sendall(request)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_upload_is_committed_before_ok_and_reuploads_collapse(rig):
    r = rig()
    r.terminal("door", "SN0001")
    t = r.sim("SN0001")
    t.fill(1200, datetime(2026, 11, 20, 8, 0))
    wait_until(lambda: t.pending() == 0, 60, "all 1200 acknowledged")
    assert len(set(r.stored("door"))) == 1200  # every OK came after its commit
    wait_until(lambda: r.runners["door"].state.state == "online", 30, "online")
    ok_before = t.uploads_ok
    t.stamp_reset()  # the firmware lost its stamp: everything goes again
    wait_until(lambda: t.pending() == 0 and t.uploads_ok >= ok_before + 3, 60, "re-upload")
    assert len(r.stored("door")) == 1200
    assert r.hub.stamp("SN0001") == "1200"


def test_field_capture_request_is_ingested(rig):
    r = rig()
    r.terminal("gate", "NCD8252500406")
    # The terminal must have knocked (polled) for its runner to come online.
    poll = f"GET {fx.FIELD_POLL_PATH} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    assert _raw(r.listener.port, poll).startswith(b"HTTP/1.1 200")
    wait_until(lambda: r.runners["gate"].state.state == "online", 30, "online")
    answer = _raw(r.listener.port, fx.FIELD_ATTLOG_REQUEST)
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"OK:1"), answer
    assert r.stored("gate") == ["adms-NCD8252500406-9001-20260728T224021-1-15"]
    assert "ZAM180-NF50VA-Ver3.4.10" in r.drivers["gate"].status()["firmware"]
    assert b"\r\nDate:" not in answer or r.drivers["gate"].may_set_clock()


def test_no_ok_without_commit(rig):
    r = rig(ack_timeout_s=1.0)
    t = r.sim("SN0002")
    from drivers.adms.driver import AdmsDriver  # a configured terminal whose runner is down
    from drivers.adms.options import AdmsOptions
    from gateway.pipeline.driver import DriverContext

    AdmsDriver("late", AdmsOptions("SN0002", delay_s=1),
               DriverContext("gw", t.zone, data_dir=str(r.tmp)), hub=r.hub)
    t.fill(50, datetime(2026, 11, 20, 8, 0))
    wait_until(lambda: t.failures >= 2, 30, "uploads refused")
    assert r.stored() == [] and t.pending() == 50
    assert all(status == 503 for what, status, _ in t.answers if what == "upload")
    r.terminal("late", "SN0002")  # the runner comes: the terminal's next try is committed
    wait_until(lambda: t.pending() == 0, 60, "acknowledged after the runner came")
    assert len(r.stored("late")) == 50


def test_unknown_serial_and_foreign_network_are_refused_and_listed(rig, tmp_path):
    r = rig()
    r.terminal("door", "SN0003")
    stranger = r.sim("SN9999")
    stranger.fill(5, datetime(2026, 11, 20, 8, 0))
    wait_until(lambda: stranger.failures >= 2, 30, "refused")
    assert r.stored() == []
    assert {a[1] for a in stranger.answers} == {403}
    (entry,) = r.hub.unknown.values()
    assert entry["serial_number"] == "SN9999" and entry["address"] == "127.0.0.2"
    assert entry["why"] == "unknown serial number" and entry["last_seen"]
    state = json.loads((tmp_path / STATE_FILE).read_text())
    assert state["unknown"][0]["serial_number"] == "SN9999"

    r2 = rig(allow_networks=())  # nobody allowed: even a configured SN is refused
    r2.terminal("door2", "SN0004")
    t = r2.sim("SN0004")
    t.fill(5, datetime(2026, 11, 20, 8, 0))
    wait_until(lambda: t.failures >= 2, 30, "refused")
    assert {a[1] for a in t.answers} == {403}
    assert any(u["why"] == "address outside allow_networks" for u in r2.hub.unknown.values())


def test_bad_lines_counted_good_lines_kept_all_garbage_is_400(rig):
    r = rig()
    d = r.terminal("door", "SN0005")
    t = r.sim("SN0005")
    t.fill(10, datetime(2026, 11, 20, 8, 0))
    t.bad_lines += ["not a punch", "7\t2026-02-30 08:00:00\t0\t1"]
    wait_until(lambda: t.pending() == 0, 30, "acknowledged")
    assert len(r.stored("door")) == 10
    wait_until(lambda: d.status()["bad_lines"] == 2, 10, "bad lines counted")
    body = b"\x00\xff garbage\n\x01\x02\n"
    req = (b"POST /iclock/cdata?SN=SN0005&table=ATTLOG&Stamp=1 HTTP/1.1\r\nHost: x\r\n"
           b"Content-Length: %d\r\n\r\n" % len(body)) + body
    assert _raw(r.listener.port, req).startswith(b"HTTP/1.1 400")
    assert d.status()["bad_requests"] >= 1
    other = b"USER PIN=1\tName=A\nOPLOG 4\t0\t2026-01-01 00:00:00\t0\t0\t0\t0\n"
    req = (b"POST /iclock/cdata?SN=SN0005&table=OPERLOG&Stamp=1 HTTP/1.1\r\nHost: x\r\n"
           b"Content-Length: %d\r\n\r\n" % len(other)) + other
    assert _raw(r.listener.port, req).endswith(b"OK:2")
    assert d.status()["other_records"] == 2 and len(r.stored("door")) == 10
    # A table we do not know is accepted and counted (a terminal must not retry it forever);
    # a name no terminal would send is a 400.
    req = b"POST /iclock/cdata?SN=SN0005&table=NEWTABLE HTTP/1.1\r\nContent-Length: 2\r\n\r\nx\n"
    assert _raw(r.listener.port, req).endswith(b"OK:1")
    assert d.status()["unknown_tables"] == 1
    req = b"POST /iclock/cdata?SN=SN0005&table=../x HTTP/1.1\r\nContent-Length: 2\r\n\r\nx\n"
    assert _raw(r.listener.port, req).startswith(b"HTTP/1.1 400")


def test_pull_and_reconciliation_ask_the_terminal_to_resend(rig):
    r = rig()
    d = r.terminal("door", "SN0006", reconcile_interval_s=1.0)
    t = r.sim("SN0006")
    t.fill(30, t.now_local() - timedelta(hours=5))
    wait_until(lambda: t.pending() == 0, 30, "acknowledged")
    # The store lost them (restored from an old backup) but the terminal thinks them sent:
    with r.store._write() as conn:  # the writer connection (query() is read-only since #13)
        conn.execute("DELETE FROM punches")
        recount(conn)  # keep the O(1) counters true, as a restore does
    wait_until(lambda: len(r.stored("door")) == 30, 60, "reconciliation refilled the store")
    assert any(c == "VERIFY SUM ATTLOG" for c in t.commands_seen)
    assert any(c.startswith("DATA QUERY ATTLOG StartTime=") for c in t.commands_seen)
    assert d.status()["reconciliation"]["terminal"] == 30
    result = r.runners["door"].submit("pull").result(10)
    assert result["queued"]
    wait_until(lambda: sum(c.startswith("DATA QUERY") for c in t.commands_seen) >= 2, 30, "pull")
    assert len(r.stored("door")) == 30
    probe = r.runners["door"].submit("probe").result(10)
    assert probe["serial"] == "SN0006" and probe["address"] == "127.0.0.2"
    wait_until(lambda: r.drivers["door"].status()["firmware"] == "SIM-1.0", 30, "INFO answered")
    assert not any(c.upper().startswith("SHELL") for c in t.commands_seen)
    with pytest.raises(ValueError, match="SHELL"):
        r.drivers["door"].ch.queue_command("Shell cat /etc/passwd")


def test_online_while_polling_offline_with_fault_1_when_silent(rig):
    r = rig()
    r.terminal("door", "SN0007")
    runner = r.runners["door"]
    t = r.sim("SN0007")
    wait_until(lambda: runner.state.state == "online", 30, "online")
    for _t, stop, _th in r.sims:
        stop.set()
    wait_until(lambda: runner.state.state == "offline", 30, "offline after 3 Delays")
    assert runner.state.fault == 1 and "no poll" in (runner.state.detail or "")
    assert t.failures == 0


def test_a_data_query_resend_never_moves_our_stamp(rig):
    """Uploads answering DATA QUERY carry stamps that are not the terminal's cursor: taking
    one as ATTLOGStamp could make the terminal skip records at its next handshake."""
    r = rig()
    r.terminal("door", "SN0008")
    port = r.listener.port
    assert _raw(port, b"GET /iclock/getrequest?SN=SN0008 HTTP/1.1\r\n\r\n").endswith(b"OK")
    wait_until(lambda: r.runners["door"].state.state == "online", 30, "online")

    def post(stamp: int, line: bytes) -> bytes:
        return _raw(port, b"POST /iclock/cdata?SN=SN0008&table=ATTLOG&Stamp=%d HTTP/1.1\r\n"
                          b"Content-Length: %d\r\n\r\n%s" % (stamp, len(line), line))

    assert post(5, b"1\t2026-01-02 08:00:00\t0\t1\n").endswith(b"OK:1")
    assert r.hub.stamp("SN0008") == "5"
    r.runners["door"].submit("pull").result(10)
    polled = _raw(port, b"GET /iclock/getrequest?SN=SN0008 HTTP/1.1\r\n\r\n")
    cmds = p.parse_commands(polled.split(b"\r\n\r\n", 1)[1])
    ident = next(i for i, c in cmds if c.startswith("DATA QUERY ATTLOG"))
    assert post(999999, b"2\t2025-01-02 08:00:00\t0\t1\n").endswith(b"OK:1")  # the re-send
    assert r.hub.stamp("SN0008") == "5" and len(r.stored("door")) == 2
    done = b"ID=%d&Return=0&CMD=DATA" % ident
    _raw(port, b"POST /iclock/devicecmd?SN=SN0008 HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s"
         % (len(done), done))
    assert post(6, b"3\t2026-01-02 09:00:00\t0\t1\n").endswith(b"OK:1")
    assert r.hub.stamp("SN0008") == "6"


def test_a_listener_that_cannot_bind_says_so_on_its_terminals(rig):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        r = rig(port=taken.getsockname()[1])
        r.terminal("door", "SN0009")
        wait_until(lambda: "listener down" in (r.runners["door"].state.detail or ""), 30,
                   "the terminal's detail names the listener")
        assert r.runners["door"].state.fault == 1
        assert "cannot listen" in (r.listener.status()["error"] or "")
