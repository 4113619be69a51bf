"""Unmodified pyzk as the oracle: it must accept the simulator over TCP and UDP."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

import pytest
from zk import ZK
from zk.exception import ZKErrorResponse

from drivers.zk_terminal.client import FramedSocket, HardenedZK
from drivers.zk_terminal.sim import ZkSimulator

#: Unmodified pyzk reads a bulk answer with one ``recv`` per DATA frame and waits forever
#: when two frames arrive in one read (``__recieve_tcp_data``); a real terminal is slower
#: than its client, so it never sees that. The simulator gets a terminal's pace here.
PACE = 0.005


def _zk(sim: ZkSimulator, udp: bool = False, password: int = 0) -> ZK:
    return ZK("127.0.0.1", sim.port, timeout=5, password=password, ommit_ping=True, force_udp=udp)


@pytest.mark.parametrize(
    ("transport", "rs"), [("tcp", 40), ("udp", 40), ("tcp", 16), ("tcp", 49), ("udp", 16)]
)
def test_pyzk_get_attendance_users_time_sizes(make_sim, transport: str, rs: int) -> None:
    sim = make_sim(
        transport=transport, record_size=rs, serial="A8N5192060011", frame_gap_s=PACE
    )
    sim.bulk_load(3000, users=30)
    t = datetime(2026, 11, 23, 8, 59, 12)
    sim.punch("1001", t, state=1, verify=15 if rs >= 40 else 1)
    z = _zk(sim, udp=transport == "udp").connect()
    try:
        att = z.get_attendance()
        assert len(att) == 3001
        last = att[-1]
        assert (last.user_id, last.timestamp) == ("1001", t)
        # pyzk's field names do not say state/verify; the layout decides (notes §1.7)
        assert (last.punch, last.status) == ((1, 15) if rs >= 40 else (1, 1))
        users = z.get_users()
        assert sorted(u.user_id for u in users)[:2] == ["1001", "1002"]
        assert len(users) == 30
        assert abs(z.get_time() - sim.now()) <= timedelta(seconds=2)
        z.read_sizes()
        assert (z.records, z.rec_cap) == (3001, 100_000)
        assert z.get_serialnumber() == "A8N5192060011"
        assert z.get_firmware_version().startswith("Ver ")
        assert z.get_platform() and z.get_device_name()
        z.set_time(datetime(2030, 1, 2, 3, 4, 5))
        assert abs(sim.now() - datetime(2030, 1, 2, 3, 4, 5)) <= timedelta(seconds=2)
        z.disable_device()
        assert not sim.enabled
        z.enable_device()
        assert sim.enabled
    finally:
        z.disconnect()


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_pyzk_live_capture(make_sim, transport: str) -> None:
    sim = make_sim(transport=transport)
    sim.add_user("1001")
    z = _zk(sim, udp=transport == "udp").connect()
    got = []

    def punches() -> None:
        deadline = time.monotonic() + 20
        while sim.sessions < 1 or not any(s.events for s in sim._server.sessions.values()):
            if time.monotonic() > deadline:
                return
            time.sleep(0.02)
        for i in range(3):
            sim.punch("1001", state=i)

    th = threading.Thread(target=punches, name="test-punches")
    th.start()
    deadline = time.monotonic() + 30
    for att in z.live_capture(new_timeout=1):
        if att is not None:
            got.append(att)
        if len(got) == 3 or time.monotonic() > deadline:
            z.end_live_capture = True
    th.join()
    z.disconnect()
    assert [a.punch for a in got] == [0, 1, 2]
    assert all(a.user_id == "1001" for a in got)


def test_pyzk_comm_key(make_sim) -> None:
    sim = make_sim(comm_key=123456, frame_gap_s=PACE)
    sim.punch("1001")
    z = _zk(sim, password=123456).connect()
    assert len(z.get_attendance()) == 1
    z.disconnect()
    with pytest.raises(ZKErrorResponse):
        _zk(sim, password=1).connect()


def test_pyzk_direct_download_mode(make_sim) -> None:
    sim = make_sim(download_mode="direct")
    sim.bulk_load(2000)
    z = _zk(sim).connect()
    assert len(z.get_attendance()) == 2000
    z.disconnect()


def test_split_replies_break_pyzk_but_not_the_hardened_socket(make_sim) -> None:
    sim = make_sim()
    sim.bulk_load(500)
    sim.inject("split_replies", count=-1, pause_s=0.05)
    hz = HardenedZK("127.0.0.1", sim.port, 5, 0, False)
    hz.connect()
    assert isinstance(hz._ZK__sock, FramedSocket)  # pyzk private names still as pinned
    hz.read_sizes()
    assert hz.records == 500
    data, _ = hz.read_with_buffer(13)
    assert len(data) == 4 + 500 * 40
    hz.disconnect()


def test_cli_runs_punches_and_stops_on_sigterm() -> None:
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "drivers.zk_terminal.sim", "--port", "0", "--records", "5",
         "--rate", "20", "--serial", "CLI0001"],
        stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        port = int(line.rsplit("port", 1)[1])
        z = ZK("127.0.0.1", port, timeout=5, ommit_ping=True).connect()
        assert z.get_serialnumber() == "CLI0001"
        deadline = time.monotonic() + 30
        while len(z.get_attendance()) <= 5 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(z.get_attendance()) > 5
        z.disconnect()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "stopped after" in out


def test_demo_simulator_hook() -> None:
    from drivers.zk_terminal.sim import demo_simulator

    with demo_simulator(rate=50) as sim:
        z = ZK("127.0.0.1", sim.port, timeout=5, ommit_ping=True).connect()
        assert z.get_serialnumber() == sim.serial
        deadline = time.monotonic() + 30
        while sim.records <= 500 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(z.get_attendance()) > 500
        z.disconnect()
