"""Fixtures for the ZK driver tests: simulators on free ports, drivers with injectable sync."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from drivers.zk_terminal.driver import ZkDriver, ZkOptions
from drivers.zk_terminal.sim import ZkSimulator
from gateway.pipeline.driver import DriverContext
from gateway.pipeline.punch import Punch

TZ = ZoneInfo("Asia/Shanghai")


@dataclass
class FakeSync:
    """An injectable NTP-sync source (the only fake: a Pi's sync state)."""

    value: bool

    def synced(self) -> bool:
        return self.value


@pytest.fixture
def make_sim() -> Iterator[Callable[..., ZkSimulator]]:
    sims: list[ZkSimulator] = []

    def factory(**kw: Any) -> ZkSimulator:
        kw.setdefault("tz", TZ)
        sim = ZkSimulator(**kw).start()
        sims.append(sim)
        return sim

    yield factory
    for s in sims:
        s.stop()


@pytest.fixture
def make_driver() -> Iterator[Callable[..., ZkDriver]]:
    drivers: list[ZkDriver] = []

    def factory(
        sim: ZkSimulator, time_sync: Any = None, name: str = "lobby", **kw: Any
    ) -> ZkDriver:
        kw.setdefault("timeout_s", 2.0)
        kw.setdefault("transport", "udp" if sim._server.transport == "udp" else "tcp")
        opts = ZkOptions("127.0.0.1", sim.port, **kw)
        d = ZkDriver(name, opts, DriverContext("gw-test", TZ, time_sync=time_sync))
        drivers.append(d)
        return d

    yield factory
    for d in drivers:
        d.close()


def drain(driver: ZkDriver, max_batch: int = 5000) -> list[Punch]:
    """read() until a call returns nothing; every batch is bounded."""
    out: list[Punch] = []
    while True:
        batch = driver.read(0.05)
        assert len(batch) <= max_batch
        if not batch:
            return out
        out.extend(batch)


def wait_for(cond: Callable[[], Any], timeout: float = 30.0, step: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(step)
    raise AssertionError("condition not met in time")
