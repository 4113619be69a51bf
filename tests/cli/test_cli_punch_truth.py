"""Issue 12's `punch add` items: it never says "published" while the broker is down, a
date-only --time is an error, an identical manual punch twice is refused, and a technician
who may read but not write the store gets one clear line (never a traceback)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway.store.db import Store
from tests.cli.conftest import start_and_wait
from tests.pipeline.harness import wait_until, write_config

ZONE = ZoneInfo("Asia/Shanghai")
ROOT = Path(__file__).resolve().parents[2]


def _when(hours: int = 2) -> str:
    return (datetime.now(ZONE) - timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M")


def _add(ctl, cfg, user: str, when: str, *extra: str, env=None):
    return ctl(cfg, "punch", "add", "--terminal", "lobby", "--user", user, "--time", when,
               "--state", "check_in", "--reason", "reader broken", *extra, env=env)


def test_punch_add_tells_the_truth_about_the_broker(tmp_path, free_port, mosquitto,
                                                    gateway_factory, ctl):
    gp = start_and_wait(gateway_factory(mqtt={"host": "127.0.0.1", "port": free_port},
                                        terminals=[{"name": "lobby", "driver": "virtual"}]))
    cfg = gp.config
    r = _add(ctl, cfg, "1001", _when())
    assert r.rc == 0, r.err
    assert "published" in r.out and "NOT published" in r.out and "link is down" in r.out
    assert "published now" not in r.out
    j = _add(ctl, cfg, "1002", _when(), "--json").json()
    assert j["via"] == "daemon" and j["published"] is False and j["broker_connected"] is False
    assert gp.terminate() == 0

    # The same daemon with the broker up: "published" only once the PUBACK came.
    gp2 = start_and_wait(gateway_factory(
        name="up", mqtt={"host": "127.0.0.1", "port": mosquitto.port},
        terminals=[{"name": "lobby", "driver": "virtual"}]))
    wait_until(lambda: ctl(gp2.config, "status", "--json").json()["broker"]["connected"], 30,
               "broker connected")
    r = _add(ctl, gp2.config, "1003", _when())
    assert r.rc == 0 and ("broker acknowledged" in r.out or "not acknowledged" in r.out), r.out
    assert gp2.terminate() == 0


def test_date_only_time_is_an_error_not_midnight(tmp_path, gateway_factory, ctl):
    gp = gateway_factory(mqtt={"host": "127.0.0.1", "port": 1},
                         terminals=[{"name": "lobby", "driver": "virtual"}])
    day = (datetime.now(ZONE) - timedelta(days=1)).strftime("%Y-%m-%d")
    for text in (day, day.replace("-", "")):
        r = _add(ctl, gp.config, "1001", text)
        assert r.rc == 2 and "--time" in r.err and "no time of day" in r.err, r.err


def test_identical_manual_punch_twice_is_refused(tmp_path, free_port, gateway_factory, ctl):
    gp = start_and_wait(gateway_factory(mqtt={"host": "127.0.0.1", "port": free_port},
                                        terminals=[{"name": "lobby", "driver": "virtual"}]))
    cfg = gp.config
    when = _when()
    assert _add(ctl, cfg, "1001", when).rc == 0
    again = _add(ctl, cfg, "1001", when)  # through the daemon
    assert again.rc == 1 and "identical manual punch" in again.err, again.err
    assert "Traceback" not in again.err
    assert gp.terminate() == 0
    offline = _add(ctl, cfg, "1001", when)  # straight into the store
    assert offline.rc == 1 and "identical manual punch" in offline.err, offline.err
    audit = ctl(cfg, "punch", "audit", "--json").json()
    assert len(audit) == 1
    assert ctl(cfg, "queue", "--json").json()["last_seq"] == 1


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root and setpriv to act as another user")
def test_technician_in_group_with_daemon_stopped_gets_one_clear_line(tmp_path):
    gid = 47113  # stands for group attgw: the technician is a member, the store is 0640
    base = Path(tempfile.mkdtemp(prefix="i13-tech-"))  # tmp_path is 0700 root: not usable
    try:
        os.chmod(base, 0o755)
        data = base / "data"
        data.mkdir(mode=0o750)
        cfg = write_config(
            base / "gw.toml",
            gateway={"data_dir": str(data), "control_socket": str(base / "gw.sock")},
            mqtt={"host": "127.0.0.1", "port": 1},
            terminals=[{"name": "lobby", "driver": "virtual"}],
        )
        os.chmod(cfg, 0o644)
        Store(data / "gateway.db").close()
        for p in (data, data / "gateway.db"):
            os.chown(p, 0, gid)
        os.chmod(data / "gateway.db", 0o640)
        tech = ["setpriv", "--reuid=65534", "--regid=65534", f"--groups={gid}"]
        env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(ROOT), "USER": "tech",
               "HOME": str(base), "PYTHONDONTWRITEBYTECODE": "1"}
        r = subprocess.run(
            [*tech, sys.executable, "-m", "gateway", "--config", str(cfg), "punch", "add",
             "--terminal", "lobby", "--user", "1001", "--time", _when(), "--state",
             "check_in", "--reason", "reader broken"],
            capture_output=True, text=True, timeout=120, env=env, cwd=base)
        assert r.returncode == 1, (r.stdout, r.stderr)
        assert "Traceback" not in r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "cannot write the punch store" in lines[0], r.stderr
        assert "sudo" in lines[0]
        # It can still read: status works for the technician (exit 1: daemon stopped).
        s = subprocess.run([*tech, sys.executable, "-m", "gateway", "--config", str(cfg),
                            "queue", "--json"], capture_output=True, text=True, timeout=120,
                           env=env, cwd=base)
        assert s.returncode == 0 and '"pending": 0' in s.stdout, s.stderr
    finally:
        shutil.rmtree(base, ignore_errors=True)
