"""Issue 7: the Pi's wall clock jumps (no RTC, NTP stepping it, a technician's ``date -s``)
while the gateway runs. The daemon runs in this process with an injected clock
(``Daemon(cfg, clock=...)``) against a real broker, a real serial reader on a pty and a file
terminal: ``seq`` order, the reader's debounce and the reconnect backoff must not care."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from drivers.serial_reader.sim import ReaderSim
from gateway.appliance.daemon import Daemon
from gateway.config import load
from tests.chaos.chaoslib import PREFIX, wait_until
from tests.pipeline.harness import write_config, write_punch_file

pytestmark = [pytest.mark.chaos, pytest.mark.slow]


class JumpingClock:
    """Wall time that a test can jump; monotonic time that never jumps (like the kernel)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def monotonic(self) -> float:
        return time.monotonic()

    def jump(self, **kw: float) -> None:
        self.offset += timedelta(**kw)


def test_clock_jumps_leave_seq_debounce_and_backoff_alone(tmp_path, mosquitto, subscriber,
                                                         tcp_proxy, figures):
    proxy = tcp_proxy(mosquitto.port)
    sub = subscriber(mosquitto.port, f"{PREFIX}/punches")
    reader = ReaderSim("em4100", seed=3)
    reader.start()
    log = tmp_path / "log.jsonl"
    ids = write_punch_file(log, 20)
    cfg = load(write_config(
        tmp_path / "gw.toml",
        gateway={"data_dir": str(tmp_path / "data"), "control_socket": str(tmp_path / "s")},
        mqtt={"host": "127.0.0.1", "port": proxy.port},
        terminals=[{"name": "file", "driver": "virtual", "file": str(log), "serial": "F"},
                   {"name": "door", "driver": "serial", "port": reader.path,
                    "framing": "em4100", "debounce_s": 3}],
    ))
    clock = JumpingClock()
    daemon = Daemon(cfg, clock=clock)
    thread = threading.Thread(target=daemon.run, name="daemon-under-test", daemon=True)
    thread.start()
    try:
        wait_until(lambda: len(sub.punches()) >= 20, 60, "the first log lines")
        wait_until(lambda: daemon.runners[1].state.state == "online", 30, "reader open")
        reader.swipe("0200000001")
        wait_until(lambda: any(p["user_id"] == "1" for p in sub.punches()), 30, "swipe 1")
        clock.jump(hours=-3)  # the wall clock steps back: a held card is still one punch
        reader.swipe("0200000001")
        ids += write_punch_file(log, 10, start=20)
        clock.jump(days=2)  # and forward
        ids += write_punch_file(log, 10, start=30)
        time.sleep(3.5)  # debounce is measured on the monotonic clock
        reader.swipe("0200000001")
        wait_until(lambda: sum(p["user_id"] == "1" for p in sub.punches()) == 2, 30,
                   "the swipe after the debounce window")
        # Backoff: the link dies, the wall clock jumps a year ahead, the link returns:
        # the backlog drains within seconds, not "a year later" nor immediately-in-a-loop.
        proxy.refuse()
        proxy.cut()
        ids += write_punch_file(log, 10, start=40)
        clock.jump(days=365)
        time.sleep(2)
        proxy.restore()
        t0 = time.monotonic()
        wait_until(lambda: set(ids) <= {p["event_id"] for p in sub.punches()}, 60,
                   "backlog after the link returns")
        recovery = time.monotonic() - t0
        punches = {p["event_id"]: p for p in sub.punches()}
        card_punches = [p for p in punches.values() if p["terminal"] == "door"]
        assert len(card_punches) == 2, "debounce must ignore wall-clock jumps"
        seqs = sorted(p["seq"] for p in punches.values())
        assert seqs == list(range(1, len(seqs) + 1)), "seq gap-free across clock jumps"
        file_seqs = [punches[i]["seq"] for i in ids]
        assert file_seqs == sorted(file_seqs), "seq follows commit order, not wall time"
        first, last = (datetime.fromisoformat(punches[i]["received_at"].replace("Z", "+00:00"))
                       for i in (ids[0], ids[-1]))
        assert last - first > timedelta(days=300), "the wall clock did jump (received_at)"
        figures("clock jumps (-3 h, +2 d, +365 d)", rounds=1, produced=len(ids) + 2,
                delivered=len(punches), lost=len(ids) + 2 - len(punches), duplicates=0,
                recovery_s=round(recovery, 1))
    finally:
        daemon.stop_event.set()
        thread.join(30)
        reader.close()
