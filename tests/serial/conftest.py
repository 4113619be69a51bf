"""Serial-reader fixtures: simulated readers on real ptys / TCP, drivers built from TOML-like
tables through ``parse_options`` (so the config path is exercised too), a manual clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from serial_helpers import TZ, options

from drivers.serial_reader.driver import SerialDriver
from drivers.serial_reader.sim import ManualClock, ReaderSim
from gateway.pipeline.driver import DriverContext


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def make_driver() -> Iterator[Callable[..., SerialDriver]]:
    made: list[SerialDriver] = []

    def make(port: str, framing: str = "em4100", clock: Any = None, **table: Any) -> SerialDriver:
        ctx = DriverContext("gw-test", TZ, clock=clock) if clock else DriverContext("gw-test", TZ)
        drv = SerialDriver("door", options({"port": port, "framing": framing, **table}), ctx)
        made.append(drv)
        return drv

    yield make
    for drv in made:
        drv.close()


@pytest.fixture
def make_sim(tmp_path: Path) -> Iterator[Callable[..., ReaderSim]]:
    sims: list[ReaderSim] = []

    def make(framing: str = "em4100", checksum: str = "none", **kw: Any) -> ReaderSim:
        if kw.pop("linked", False):
            kw["link"] = str(tmp_path / f"usb-FTDI_FT232R_USB_UART_A5{len(sims)}-if00-port0")
        sim = ReaderSim(framing, checksum, seed=len(sims), **kw)
        sim.start()
        sims.append(sim)
        return sim

    yield make
    for sim in sims:
        sim.close()
