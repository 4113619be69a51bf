"""``gatewayctl sim serial`` (``drivers.serial_reader.sim.main``) as a real process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from serial_helpers import read_until

from gateway.devkit.broker import free_ports


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "drivers.serial_reader.sim", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )


def test_pty_rate(make_driver):
    proc = spawn("--framing", "em4100", "--pty", "--rate", "20", "--cards", "0100886CAB,62E3086CED")
    try:
        path = proc.stdout.readline().strip()
        assert path.startswith("/dev/pts/")
        drv = make_driver(path, "em4100", debounce_s=0)
        drv.open()
        users = {p.user_id for p in read_until(drv, 4)}
        assert users == {str(0x00886CAB), str(0xE3086CED)}
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0


def test_tcp_script_with_faults(make_driver, tmp_path):
    script = tmp_path / "cards.txt"
    script.write_text(
        "wait  # until the gateway connects\n"
        "noise 12\n0008921324 0.05\nbad 0008921324\nsplit 0000123478 4\n0000123478\nquit\n"
    )
    port = free_ports(1)[0]
    proc = spawn(
        "--framing", "stx_etx", "--checksum", "xor", "--tcp", str(port), "--script", str(script)
    )
    try:
        url = proc.stdout.readline().strip()
        assert url == f"socket://127.0.0.1:{port}"
        drv = make_driver(url, "stx_etx", checksum="xor", data_format="decimal", debounce_s=0)
        drv.open()
        punches = read_until(drv, 3)
        assert [p.user_id for p in punches] == ["8921324", "123478", "123478"]
        st = drv.status()
        assert st["bad_checksum"] == 1 and st["noise_bytes"] >= 12
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_demo_hook(make_driver):
    from drivers.serial_reader.sim import demo_simulator

    with demo_simulator(rate=20) as reader:
        drv = make_driver(reader.port_url, reader.framing, debounce_s=1)
        drv.open()
        assert len({p.user_id for p in read_until(drv, 3)}) == 3
