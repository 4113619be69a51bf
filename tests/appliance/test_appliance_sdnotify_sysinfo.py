"""sd_notify against real AF_UNIX datagram sockets; sysinfo readers against temp files."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from gateway.appliance import sdnotify, sysinfo
from gateway.pipeline.driver import TimeSync


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(sdnotify, "_warned", False)


@pytest.fixture
def path_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    addr = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(addr)
        sock.settimeout(10)
        monkeypatch.setenv("NOTIFY_SOCKET", addr)
        yield sock


@pytest.fixture
def abstract_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    name = f"attgw-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(10)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        yield sock


def recv(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def test_ready_status_watchdog_stopping_over_a_path_socket(path_socket: socket.socket) -> None:
    assert sdnotify.ready("3 terminals, queue 0")
    assert recv(path_socket) == "READY=1\nSTATUS=3 terminals, queue 0"
    assert sdnotify.watchdog()
    assert recv(path_socket) == "WATCHDOG=1"
    assert sdnotify.status("draining 120 punches\nsecond line")
    assert recv(path_socket) == "STATUS=draining 120 punches second line"
    assert sdnotify.extend_timeout(2.5)
    assert recv(path_socket) == "EXTEND_TIMEOUT_USEC=2500000"
    assert sdnotify.stopping()
    assert recv(path_socket) == "STOPPING=1"
    assert sdnotify.ready()
    assert recv(path_socket) == "READY=1"


def test_abstract_socket(abstract_socket: socket.socket) -> None:
    assert sdnotify.ready("up")
    assert recv(abstract_socket) == "READY=1\nSTATUS=up"
    assert sdnotify.watchdog_trigger()
    assert recv(abstract_socket) == "WATCHDOG=trigger"


def test_no_socket_is_a_silent_no_op() -> None:
    with capture_logs() as logs:
        assert sdnotify.ready("x") is False
        assert sdnotify.watchdog() is False
        assert sdnotify.notify() is False
    assert logs == []


def test_failed_send_never_raises_and_is_logged_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens.sock"))
    with capture_logs() as logs:
        assert sdnotify.watchdog() is False
        assert sdnotify.watchdog() is False
        assert sdnotify.status("still here") is False
    assert [e["event"] for e in logs] == ["sd_notify_failed"]


def test_unsupported_socket_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")
    with capture_logs() as logs:
        assert sdnotify.ready() is False
    assert [e["event"] for e in logs] == ["sd_notify_unsupported_socket"]


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("30000000", None, 15.0),
        ("30000000", "self", 15.0),
        ("30000000", "other", None),
        (None, None, None),
        ("0", None, None),
        ("garbage", None, None),
    ],
)
def test_watchdog_interval(
    monkeypatch: pytest.MonkeyPatch, usec: str | None, pid: str | None, expected: float | None
) -> None:
    if usec is not None:
        monkeypatch.setenv("WATCHDOG_USEC", usec)
    if pid == "self":
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    elif pid == "other":
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert sdnotify.watchdog_interval() == expected


# -- sysinfo --------------------------------------------------------------------------------


def test_cpu_temperature(tmp_path: Path) -> None:
    f = tmp_path / "temp"
    f.write_text("48312\n")
    assert sysinfo.cpu_temperature_c(str(f)) == pytest.approx(48.312)
    f.write_text("not a number\n")
    assert sysinfo.cpu_temperature_c(str(f)) is None
    assert sysinfo.cpu_temperature_c(str(tmp_path / "absent")) is None


def test_throttled_decodes_now_and_since_boot(tmp_path: Path) -> None:
    f = tmp_path / "get_throttled"
    f.write_text("50005\n")  # under-voltage and throttled, now and since boot
    t = sysinfo.throttled(str(f), str(tmp_path / "no-hwmon"))
    assert t is not None
    assert t.now == ("under_voltage", "throttled")
    assert t.since_boot == ("under_voltage", "throttled")
    assert t.under_voltage and not t.ok
    assert t.as_dict() == {
        "raw": "0x50005",
        "now": ["under_voltage", "throttled"],
        "since_boot": ["under_voltage", "throttled"],
    }
    f.write_text("0\n")
    t = sysinfo.throttled(str(f), str(tmp_path / "no-hwmon"))
    assert t is not None and t.ok
    f.write_text("f000f\n")
    t = sysinfo.throttled(str(f), str(tmp_path / "no-hwmon"))
    assert t is not None and len(t.now) == 4 and len(t.since_boot) == 4


def test_throttled_falls_back_to_rpi_volt_hwmon(tmp_path: Path) -> None:
    hwmon = tmp_path / "hwmon"
    (hwmon / "hwmon0").mkdir(parents=True)
    (hwmon / "hwmon0" / "name").write_text("cpu_thermal\n")
    (hwmon / "hwmon1").mkdir()
    (hwmon / "hwmon1" / "name").write_text("rpi_volt\n")
    (hwmon / "hwmon1" / "in0_lcrit_alarm").write_text("1\n")
    t = sysinfo.throttled(str(tmp_path / "absent"), str(hwmon))
    assert t is not None and t.under_voltage and t.since_boot == ()
    assert sysinfo.throttled(str(tmp_path / "absent"), str(tmp_path / "absent")) is None


def test_disk_and_uptime_and_model(tmp_path: Path) -> None:
    free = sysinfo.disk_free_bytes(tmp_path)
    total = sysinfo.disk_total_bytes(tmp_path)
    assert free is not None and total is not None and 0 <= free <= total
    assert sysinfo.disk_free_bytes(tmp_path / "absent") is None
    up = tmp_path / "uptime"
    up.write_text("12345.67 23456.78\n")
    assert sysinfo.uptime_s(str(up)) == pytest.approx(12345.67)
    up.write_text("")
    assert sysinfo.uptime_s(str(up)) is None
    model = tmp_path / "model"
    model.write_bytes(b"Raspberry Pi 5 Model B Rev 1.0\0")
    assert sysinfo.board_model(str(model)) == "Raspberry Pi 5 Model B Rev 1.0"
    assert sysinfo.board_model(str(tmp_path / "absent")) is None


def test_system_time_sync_uses_the_timesyncd_flag(tmp_path: Path) -> None:
    flag = tmp_path / "synchronized"
    ts: TimeSync = sysinfo.SystemTimeSync(str(flag), use_adjtimex=False)
    assert ts.synced() is False
    flag.touch()
    assert ts.synced() is True
    assert sysinfo.SystemTimeSync(str(flag)).state() == (True, "timesyncd")
    assert sysinfo.SystemTimeSync(str(tmp_path / "no"), use_adjtimex=False).state() == (
        False,
        "unknown",
    )


def test_system_time_sync_falls_back_to_adjtimex(tmp_path: Path) -> None:
    kernel = sysinfo.adjtimex_synced()  # whatever this machine says; a bool where permitted
    synced, source = sysinfo.SystemTimeSync(str(tmp_path / "no-flag")).state()
    if kernel is None:
        assert (synced, source) == (False, "unknown")
    else:
        assert (synced, source) == (kernel, "adjtimex")


def test_file_time_sync(tmp_path: Path) -> None:
    ts: TimeSync = sysinfo.FileTimeSync(tmp_path / "synced")
    assert not ts.synced()
    (tmp_path / "synced").touch()
    assert ts.synced()


def test_clock_check_spawns_no_process_per_call(tmp_path: Path) -> None:
    """Issue 18: ``find_library("c")`` runs ``ldconfig -p`` each time; the daemon checks the
    clock every second, so libc must be resolved once. Counted with an audit hook on process
    creation, in a child interpreter (audit hooks cannot be removed)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from gateway.appliance import sysinfo\n"
        "spawned = []\n"
        "sys.addaudithook(lambda ev, args: spawned.append(ev) "
        "if ev in ('subprocess.Popen', 'os.posix_spawn', 'os.exec') else None)\n"
        f"sync = sysinfo.SystemTimeSync({str(tmp_path / 'no-flag')!r})\n"
        "for _ in range(10):\n"
        "    sync.state()\n"
        "print(len(spawned))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert int(out.stdout.strip()) <= 1, out.stdout  # the first call may run ldconfig once
