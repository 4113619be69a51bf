"""Issue 12: the systemd watchdog through a long ZK log download, and not through a hang.

A real daemon process under a test ``$NOTIFY_SOCKET`` (as ``test_core_sdnotify_daemon``)
opens a simulated ZK terminal whose every reply is delayed: the log download takes several
times ``watchdog_stall_s`` by construction (chunks times delay), yet each chunk that arrives is
progress, so the watchdog stays fed. Then the terminal stops answering mid-pull: that read
makes no progress, the supervisor withholds the ping (``STALLED``), and it resumes once the
terminal answers again.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from drivers.zk_terminal.driver import ZkDriver, ZkOptions
from drivers.zk_terminal.sim import ZkSimulator
from gateway.ops import control_client as control
from gateway.pipeline.driver import DriverContext, bind_progress
from tests.pipeline.harness import GatewayProcess, recv_for, wait_until, write_config

STALL_S = 5
DELAY_S = 1.5  # per reply: well under STALL_S, so only a real hang stalls
RECORDS = 13_000  # 40-byte records: 8 chunks of 65 472 bytes, each one delayed reply


def _until(sock: socket.socket, needle: str, timeout: float, seen: list[str]) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        seen += recv_for(sock, 0.5)
        if any(needle in m for m in seen):
            return
    raise AssertionError(f"no {needle!r} within {timeout}s; last: {seen[-3:]}")


def test_long_download_feeds_the_watchdog_and_a_hang_stops_it(tmp_path: Path, mosquitto) -> None:
    sim = ZkSimulator(tz=ZoneInfo("Asia/Shanghai")).start()
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    try:
        sim.bulk_load(RECORDS)
        sim.inject("slow", delay_s=DELAY_S)
        ctl_sock = tmp_path / "c.sock"
        cfg = write_config(
            tmp_path / "gw.toml",
            gateway={"data_dir": str(tmp_path / "data"), "watchdog_stall_s": STALL_S,
                     "control_socket": str(ctl_sock)},
            mqtt={"host": "127.0.0.1", "port": mosquitto.port},
            terminals=[{"name": "zk1", "driver": "zk", "host": "127.0.0.1", "port": sim.port,
                        "live": False, "timeout_s": 12, "poll_interval_s": 3600}],
        )
        env = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "2000000"}
        with GatewayProcess(cfg, tmp_path / "gw.log", env) as gw:
            seen: list[str] = []
            _until(notify, "READY=1", 60, seen)
            t0 = time.monotonic()
            during: list[str] = []
            while "zk_reconcile" not in gw.log():  # the download (inside open()) finished
                assert gw.running(), gw.log()
                assert time.monotonic() - t0 < 300, "the download never finished"
                during += recv_for(notify, 0.5)
            took = time.monotonic() - t0
            # The premise, true by construction (8+ delayed replies): longer than the limit.
            assert took > STALL_S, took
            assert not [m for m in during if "STALLED" in m], during
            pings = sum("WATCHDOG=1" in m for m in during)
            assert pings >= 3, during
            print(f"download {took:.1f} s (stall limit {STALL_S} s): {pings} pings, 0 STALLED")

            # A terminal that stops answering mid-pull: no bytes, no progress, no ping.
            sim.clear_faults()
            sim.inject("hang")
            pull = threading.Thread(
                target=lambda: _quiet_call(ctl_sock), name="test-pull", daemon=True
            )
            pull.start()
            stalled: list[str] = []
            _until(notify, "STALLED zk1", 60, stalled)
            quiet = recv_for(notify, 3.0)
            assert not [m for m in quiet if "WATCHDOG=1" in m], quiet
            sim.clear_faults()  # it answers again: reconnect, pings resume
            _until(notify, "WATCHDOG=1", 120, [])
            pull.join(60)
            wait_until(lambda: not pull.is_alive(), 5, "the pull request to end")
            assert gw.terminate() == 0
    finally:
        notify.close()
        sim.stop()


def _quiet_call(sock: Path) -> None:
    try:
        control.call(sock, {"cmd": "pull", "terminal": "zk1", "timeout_s": 60}, 70.0)
    except Exception:  # the pull fails (the terminal hung): that is the point
        pass


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_zk_download_reports_progress_per_chunk(transport: str) -> None:
    """The driver side of it, in process: ``open()`` (a full log download) calls
    ``ctx.progress()`` as data arrives, over TCP and UDP; outside a runner it is a no-op."""
    tz = ZoneInfo("Asia/Shanghai")
    sim = ZkSimulator(transport=transport, tz=tz).start()
    beats: list[float] = []
    try:
        sim.bulk_load(RECORDS)
        opts = ZkOptions("127.0.0.1", sim.port, transport=transport, live=False, timeout_s=10)
        driver = ZkDriver("zk1", opts, DriverContext("gw-test", tz))
        driver.open()  # no hook bound on this thread: nothing to report to, no error
        driver.close()
        bind_progress(lambda: beats.append(time.monotonic()))
        try:
            driver.open()
        finally:
            bind_progress(None)
            driver.close()
        # 520 000 bytes of log: at least one report per 65 472-byte chunk.
        assert len(beats) >= RECORDS * 40 // 65472, len(beats)
    finally:
        sim.stop()
