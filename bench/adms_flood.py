"""A connection flood against the push listener while a terminal uploads (issue 15).

Run: ``.venv/bin/python bench/adms_flood.py [--connections 10000]``

One address (127.0.0.1) opens ``--connections`` TCP connections and holds them; a simulated
terminal on another address (127.0.0.2) uploads 2 000 past records and 200 new punches at
the same time. Printed: how many connections were served at once (the per-address cap),
how many were closed at once, the listener process's thread count at the peak against its
count before (the baseline), and whether every punch of the terminal was committed.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import machine
from drivers.adms.driver import AdmsDriver
from drivers.adms.hub import Hub
from drivers.adms.listener import AdmsListener
from drivers.adms.options import AdmsOptions, ListenerOptions
from drivers.adms.sim import SimTerminal
from gateway.pipeline.driver import DriverContext
from gateway.pipeline.runner import TerminalRunner
from gateway.store.db import Store

TZ = ZoneInfo("Asia/Shanghai")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--connections", type=int, default=10_000)
    n = ap.parse_args().connections
    with tempfile.TemporaryDirectory() as tmp:
        hub = Hub()
        hub.load(tmp)
        opts = ListenerOptions(host="127.0.0.1", port=0, error_delay_s=1, request_timeout_s=5)
        listener = AdmsListener(opts, hub, zone=TZ)
        listener.start()
        store = Store(Path(tmp) / "gateway.db")
        ctx = DriverContext("bench", TZ, data_dir=tmp)
        runner = TerminalRunner(AdmsDriver("door", AdmsOptions("FLOOD1", delay_s=1), ctx, hub),
                                store, backoff_max_s=1.0)  # fmt: skip
        runner.start()
        t = SimTerminal(f"127.0.0.1:{listener.port}", "FLOOD1", TZ, source="127.0.0.2",
                        error_delay_s=1.0)  # fmt: skip
        t.fill(2000, datetime(2026, 11, 1, 8, 0))
        stop = threading.Event()
        sim = threading.Thread(target=t.run, args=(stop,), name="sim", daemon=True)
        sim.start()
        while runner.state.state != "online":
            time.sleep(0.1)
        before = threading.active_count()
        socks: list[socket.socket] = []
        errors = 0
        t0 = time.monotonic()
        for i in range(n):
            try:
                socks.append(socket.create_connection(("127.0.0.1", listener.port), timeout=10))
            except OSError:
                errors += 1
            if i % 1000 == 0:
                t.punch(str(5000 + i // 1000))
        took = time.monotonic() - t0
        peak = threading.active_count()
        status = listener.status()
        for i in range(200):
            t.punch(str(i))
        while t.pending():
            time.sleep(0.2)
        stored = store.query("SELECT count(*) FROM punches")[0][0]
        for s in socks:
            s.close()
        stop.set()
        sim.join(30)
        runner.stop()
        listener.stop()
        store.close()
    print(f"Connection flood; {machine()}")
    print(f"{len(socks)} connections opened from one address in {took:.1f} s ({errors} errors)")
    print(f"served at once: {status['connections']}, closed at once: "
          f"{status['refused_connections']}")  # fmt: skip
    print(f"threads: {peak} at the peak vs {before} before the flood (ratio {peak / before:.2f})")
    print(f"terminal on another address: {stored} of {len(t.log)} punches committed")
    return 0 if stored == len(t.log) else 1


if __name__ == "__main__":
    raise SystemExit(main())
