"""Issue 5: the daemon under a fake $NOTIFY_SOCKET: READY, WATCHDOG, no WATCHDOG when wedged,
STOPPING on SIGTERM."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from tests.pipeline.harness import GatewayProcess, recv_for, write_config


def _wait_for(sock: socket.socket, needle: str, timeout: float) -> list[str]:
    seen: list[str] = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        seen += recv_for(sock, 0.5)
        if any(needle in m for m in seen):
            return seen
    raise AssertionError(f"no {needle!r} within {timeout}s; got {seen[-5:]}")


def test_notify_ready_watchdog_wedged_stopping(tmp_path: Path, mosquitto):
    notify_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify_path))
    hang = tmp_path / "hang"
    cfg = write_config(
        tmp_path / "gw.toml",
        gateway={"data_dir": str(tmp_path / "data"), "watchdog_stall_s": 5,
                 "control_socket": str(tmp_path / "c.sock")},
        mqtt={"host": "127.0.0.1", "port": mosquitto.port},
        terminals=[{"name": "t1", "driver": "virtual", "hang_file": str(hang)}],
    )
    env = {"NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "2000000"}
    with GatewayProcess(cfg, tmp_path / "gw.log", env) as gw:
        seen = _wait_for(sock, "READY=1", 30)
        seen += _wait_for(sock, "WATCHDOG=1", 10)
        assert any("STATUS=" in m for m in seen)
        hang.touch()  # wedge the runner: its read() never returns
        _wait_for(sock, "STALLED", 30)  # the supervisor notices within watchdog_stall_s
        quiet = recv_for(sock, 3.0)
        assert not any("WATCHDOG=1" in m for m in quiet), "must stop pinging while wedged"
        assert any("STALLED t1" in m for m in quiet)
        hang.unlink()  # unwedged: pings resume
        _wait_for(sock, "WATCHDOG=1", 15)
        assert gw.terminate() == 0
        tail = recv_for(sock, 1.0)
    assert any("STOPPING=1" in m for m in tail)
    sock.close()
