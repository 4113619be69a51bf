"""Fixtures for push terminals: an in-process rig (real listener on a free port, real runner,
real SQLite store) and simulated terminals talking real HTTP to it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from drivers.adms.driver import AdmsDriver
from drivers.adms.hub import Hub
from drivers.adms.listener import AdmsListener
from drivers.adms.options import AdmsOptions, ListenerOptions
from drivers.adms.sim import SimTerminal
from gateway.pipeline.driver import DriverContext
from gateway.pipeline.runner import TerminalRunner
from gateway.store.db import Store

TZ = ZoneInfo("Asia/Shanghai")


@dataclass
class Sync:
    """The Pi's NTP state (the only stand-in: a Pi's sync flag)."""

    value: bool = True

    def synced(self) -> bool:
        return self.value


@dataclass
class Rig:
    tmp: Path
    hub: Hub
    store: Store
    listener: AdmsListener
    sync: Sync
    runners: dict[str, TerminalRunner] = field(default_factory=dict)
    drivers: dict[str, AdmsDriver] = field(default_factory=dict)
    sims: list[tuple[SimTerminal, threading.Event, threading.Thread]] = field(default_factory=list)

    @property
    def server(self) -> str:
        return f"127.0.0.1:{self.listener.port}"

    def terminal(self, name: str, sn: str, **kw: Any) -> AdmsDriver:
        kw.setdefault("delay_s", 1)
        ctx = DriverContext("gw-test", TZ, time_sync=self.sync, data_dir=str(self.tmp))
        d = AdmsDriver(name, AdmsOptions(sn, **kw), ctx, hub=self.hub)
        r = TerminalRunner(d, self.store, backoff_max_s=1.0)
        r.start()
        self.runners[name], self.drivers[name] = r, d
        return d

    def sim(self, sn: str, *, start: bool = True, **kw: Any) -> SimTerminal:
        kw.setdefault("zone", TZ)
        kw.setdefault("source", "127.0.0.2")  # hostile tests knock from 127.0.0.1
        kw.setdefault("timeout_s", 20.0)
        kw.setdefault("error_delay_s", 1.0)  # before a handshake tells it the real one
        t = SimTerminal(self.server, sn, **kw)
        stop = threading.Event()
        th = threading.Thread(target=t.run, args=(stop,), name=f"sim:{sn}", daemon=True)
        if start:
            th.start()
        self.sims.append((t, stop, th))
        return t

    def stored(self, terminal: str | None = None) -> list[str]:
        sql = "SELECT event_id FROM punches" + (" WHERE terminal=?" if terminal else "")
        return [r[0] for r in self.store.query(sql, (terminal,) if terminal else ())]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    made: list[Rig] = []

    def make(**listener: Any) -> Rig:
        listener.setdefault("host", "127.0.0.1")
        listener.setdefault("port", 0)
        listener.setdefault("error_delay_s", 1)
        listener.setdefault("ack_timeout_s", 10.0)
        hub = Hub()
        hub.load(tmp_path)
        store = Store(tmp_path / "gateway.db")
        lst = AdmsListener(ListenerOptions(**listener), hub, zone=TZ)
        lst.start()
        r = Rig(tmp_path, hub, store, lst, Sync())
        made.append(r)
        return r

    yield make
    for r in made:
        for _t, stop, _th in r.sims:
            stop.set()
        for _t, _stop, th in r.sims:
            if th.is_alive():
                th.join(25)
        for runner in r.runners.values():
            runner.stop()
        r.listener.stop()
        r.store.close()
