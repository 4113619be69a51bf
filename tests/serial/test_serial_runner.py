"""Through the real runner and the real store: unplug/replug recovers, nothing is lost."""

from __future__ import annotations

import time
from pathlib import Path

from drivers.serial_reader.sim import ReaderSim
from gateway.pipeline.runner import TerminalRunner
from gateway.store.db import Store


def wait_for(cond, deadline_s: float = 60.0) -> None:
    end = time.monotonic() + deadline_s
    while not cond():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.02)


def stored_users(store: Store) -> list[str]:
    return [
        r[0]
        for r in store.query("SELECT json_extract(record, '$.user_id') FROM punches ORDER BY seq")
    ]


def test_runner_commits_and_recovers_from_unplug(make_sim, make_driver, tmp_path: Path):
    sim: ReaderSim = make_sim("em4100", linked=True)
    drv = make_driver(sim.path, "em4100", debounce_s=0)
    store = Store(tmp_path / "store.db")
    runner = TerminalRunner(drv, store, backoff_max_s=2)
    runner.start()
    try:
        wait_for(lambda: runner.state.state == "online")
        for n in range(10):
            sim.swipe(f"01{n:08X}")
        wait_for(lambda: len(stored_users(store)) == 10)

        sim.unplug()
        wait_for(lambda: runner.state.state == "offline" and runner.state.fault == 2)
        assert "serial port missing" in (runner.state.detail or "")

        sim.replug()
        wait_for(lambda: runner.state.state == "online")
        for n in range(10, 40):
            sim.swipe(f"01{n:08X}")
        wait_for(lambda: len(stored_users(store)) == 40)
        assert stored_users(store) == [str(n) for n in range(40)]
        assert store.integrity_check() == ["ok"]
    finally:
        runner.stop()
        store.close()
