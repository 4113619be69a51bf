"""Issue 12: the shipped unit's ``ExecStart=`` runs for real.

The line is taken out of ``systemd/attendance-gateway.service`` as it ships; only the
install paths are swapped (the venv's ``gatewayctl``, the config, ``LG_WD``), then it runs
as a process with the unit's ``Environment=`` until the daemon answers on its control socket
and publishes a retained ``online``. The old test compared the string to itself, which is
how a ``gatewayctl`` that rejected ``--config`` after the command got through.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

from gateway.ops import control_client as control
from tests.pipeline.harness import wait_until, write_config

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "attendance-gateway.service"
INSTALLED_VENV = "/opt/attendance-gateway/venv"
INSTALLED_CONFIG = "/etc/attendance-gateway/config.toml"
INSTALLED_RUNTIME = "/run/attendance-gateway"


def unit_values(key: str) -> list[str]:
    return [
        line.split("=", 1)[1]
        for line in UNIT.read_text().splitlines()
        if line.startswith(key + "=")
    ]


def swap_paths(text: str, config: Path, runtime: Path) -> str:
    venv = str(Path(sys.executable).parent.parent)
    out = text.replace(INSTALLED_VENV, venv).replace(INSTALLED_CONFIG, str(config))
    return out.replace(INSTALLED_RUNTIME, str(runtime))


def test_the_units_execstart_starts_the_daemon(tmp_path: Path, mosquitto, subscriber) -> None:
    (exec_start,) = unit_values("ExecStart")
    sock = tmp_path / "control.sock"
    cfg = write_config(
        tmp_path / "config.toml",
        gateway={"data_dir": str(tmp_path / "data"), "control_socket": str(sock)},
        mqtt={"host": "127.0.0.1", "port": mosquitto.port},
        terminals=[{"name": "t1", "driver": "virtual", "file": str(tmp_path / "p.jsonl")}],
    )
    argv = shlex.split(swap_paths(exec_start, cfg, tmp_path))
    assert argv[0] == str(Path(sys.executable).parent / "gatewayctl"), exec_start
    assert str(cfg) in argv, f"the unit's config path is not in {exec_start!r}"
    env = {**os.environ, "NO_COLOR": "1"}
    for line in unit_values("Environment"):
        for item in shlex.split(swap_paths(line, cfg, tmp_path)):
            key, value = item.split("=", 1)
            env[key] = value
    sub = subscriber(mosquitto.port, "attendance/#")
    log = (tmp_path / "gw.log").open("wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    log.close()
    try:
        wait_until(lambda: control.ping(sock) is not None or proc.poll() is not None, 60,
                   "the control socket")
        assert proc.poll() is None, (tmp_path / "gw.log").read_text()
        status = "attendance/gw-test/status"

        def online() -> bool:
            msg = sub.retained(status)
            return msg is not None and json.loads(msg.payload)["state"] == "online"

        wait_until(online, 60, "a retained online status")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, (tmp_path / "gw.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
