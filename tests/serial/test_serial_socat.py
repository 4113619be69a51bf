"""Unplug and replug with socat-made pty pairs on stable paths (like /dev/serial/by-id)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
import serial
from serial_helpers import open_with_retry, read_until, read_until_error

from drivers.serial_reader.em4100 import Em4100Codec

pytestmark = pytest.mark.skipif(shutil.which("socat") is None, reason="socat not installed")


class SocatPair:
    """``socat pty,raw,echo=0,link=A pty,raw,echo=0,link=B``: killing it is an unplug."""

    def __init__(self, tmp: Path) -> None:
        self.a = str(tmp / "usb-reader-if00-port0")
        self.b = str(tmp / "reader-side")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["socat", f"pty,raw,echo=0,link={self.a}", f"pty,raw,echo=0,link={self.b}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        end = time.monotonic() + 20
        while not (Path(self.a).exists() and Path(self.b).exists()):
            assert time.monotonic() < end, "socat did not create its links"
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
            self.proc = None


@pytest.fixture
def socat_pair(tmp_path: Path):
    pair = SocatPair(tmp_path)
    pair.start()
    yield pair
    pair.stop()


def test_kill_socat_is_an_unplug_restart_is_a_replug(socat_pair, make_driver):
    codec = Em4100Codec()
    drv = make_driver(socat_pair.a, "em4100", debounce_s=0)
    drv.open()
    reader = serial.Serial(socat_pair.b, 9600, timeout=1)
    reader.write(codec.encode("0100886CAB"))
    assert len(read_until(drv, 1)) == 1

    socat_pair.stop()  # unplug
    reader.close()
    _, err = read_until_error(drv)
    assert err.fault == 2 and "missing" in str(err)
    drv.close()

    socat_pair.start()  # replug: the same stable path again
    failures = open_with_retry(drv)
    assert failures == 0
    reader = serial.Serial(socat_pair.b, 9600, timeout=1)
    cards = [f"01{n:08X}" for n in range(1, 31)]
    for card in cards:
        reader.write(codec.encode(card))
    punches = read_until(drv, len(cards))
    reader.close()
    assert [p.user_id for p in punches] == [str(n) for n in range(1, 31)]  # none lost
