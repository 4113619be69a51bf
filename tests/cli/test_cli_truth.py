"""Issue 12: status tells the truth, and exit codes follow reality.

* A working serial reader is ``online`` (the driver's own ``state: open`` figure used to
  overwrite the runner's state, so ``status`` exited 1 and doctor FAILed a healthy site);
  an unplugged one says its port is missing, not ``open``.
* ``terminal sync-clock`` that the terminal side refused (the Pi is not NTP-synced) exits 1.
"""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

from drivers.serial_reader.sim import ReaderSim
from drivers.zk_terminal.sim import ZkSimulator
from tests.cli.conftest import start_and_wait
from tests.pipeline.harness import wait_until


def test_serial_reader_online_then_unplugged_says_missing(
    tmp_path: Path, mosquitto, gateway_factory, ctl
) -> None:
    link = tmp_path / "usb-FTDI_FT232R_USB_UART_A50-if00-port0"
    with ReaderSim("em4100", link=str(link), seed=1) as reader:
        gp = start_and_wait(gateway_factory(
            mqtt={"host": "127.0.0.1", "port": mosquitto.port},
            terminals=[{"name": "door", "driver": "serial", "port": str(link),
                        "framing": "em4100"}],
        ))
        cfg = gp.config

        def door() -> dict:
            return ctl(cfg, "status", "--json").json()["terminals"]["door"]

        # The driver's figures arrive with the runner's periodic refresh: wait for them.
        wait_until(lambda: "port" in door(), 60, "the serial figures")
        r = ctl(cfg, "status", "--json")
        assert r.json()["terminals"]["door"]["state"] == "online", r.out
        assert r.json()["terminals"]["door"]["port_state"] == "open", r.out
        assert r.rc == 0, r.out
        doc = ctl(cfg, "doctor", "--json")
        checks = {c["name"]: c for c in doc.json()["checks"]}
        assert checks["terminal door"]["status"] == "PASS", checks["terminal door"]
        assert "door" not in doc.json()["failing"]

        reader.unplug()
        wait_until(lambda: door()["state"] == "offline", 60, "the reader offline")
        gone = door()
        assert gone["port_state"] == "missing", gone
        assert gone["fault"] == 2 and "missing" in gone["detail"], gone
        assert ctl(cfg, "status").rc == 1
        assert gp.terminate() == 0


def test_sync_clock_refused_exits_nonzero(tmp_path: Path, mosquitto, gateway_factory, ctl):
    sim = ZkSimulator(tz=ZoneInfo("Asia/Shanghai")).start()
    try:
        gp = start_and_wait(gateway_factory(
            mqtt={"host": "127.0.0.1", "port": mosquitto.port},
            # A flag file that does not exist: the Pi's clock is not NTP-synced.
            gateway={"time_sync": str(tmp_path / "no-ntp-flag")},
            terminals=[{"name": "lobby", "driver": "zk", "host": "127.0.0.1",
                        "port": sim.port, "live": False, "timeout_s": 5}],
        ))
        cfg = gp.config
        wait_until(
            lambda: ctl(cfg, "status", "--json").json()["terminals"]["lobby"]["state"]
            == "online", 60, "the terminal online")
        r = ctl(cfg, "terminal", "sync-clock", "lobby")
        assert r.rc == 1, (r.out, r.err)
        assert "not NTP-synchronised" in r.err
        j = ctl(cfg, "terminal", "sync-clock", "lobby", "--json")
        assert j.rc == 1 and j.json()["result"]["done"] is False
        (tmp_path / "no-ntp-flag").touch()  # synced now: the same command succeeds
        ok = ctl(cfg, "terminal", "sync-clock", "lobby", "--json")
        assert ok.rc == 0 and ok.json()["result"]["done"] is True, ok.out
        assert gp.terminate() == 0
    finally:
        sim.stop()


def test_direct_probe_that_cannot_open_exits_nonzero(tmp_path: Path, ctl) -> None:
    """Daemon stopped, the reader's port missing: the probe says why and exits 1, not 0."""
    from tests.pipeline.harness import write_config

    cfg = write_config(
        tmp_path / "gw.toml",
        gateway={"data_dir": str(tmp_path / "data"), "control_socket": str(tmp_path / "c.sock")},
        mqtt={"host": "127.0.0.1", "port": 1},
        terminals=[{"name": "door", "driver": "serial", "port": str(tmp_path / "ttyUSB9"),
                    "framing": "em4100"}],
    )
    r = ctl(cfg, "terminal", "probe", "door")
    assert r.rc == 1, (r.out, r.err)
    assert "serial port missing" in r.err
    j = ctl(cfg, "terminal", "probe", "door", "--json")
    assert j.rc == 1 and j.json()["result"]["opened"] is False
