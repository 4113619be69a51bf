"""Push-terminal ingest and memory (issue 15), each beside a baseline from the same run.

Run: ``.venv/bin/python bench/adms_ingest.py [--records 50000] [--batch 1000] [--poll-s 60]``

Ingest, in punches/s, all into the durable store (WAL, synchronous=FULL):

a. Baseline: the ZK pull driver's full-log ingest of the same number of records (simulator in
   its own process, ``driver.open()`` + reads committed as the runner does).
b. A push terminal's upload through HTTP: the simulated terminal (its own process) posts
   ``--batch`` lines per request; the listener parses, the runner commits, and only then is
   ``OK`` answered (the next batch waits for it, as on a real terminal).
c. The same terminal's stamp is reset and it re-uploads everything: all duplicates.

Memory: the real daemon (``gatewayctl run``) with 20 push terminals configured and a private
broker: RSS after it settled with no terminal polling (baseline), then peak RSS while 20
simulated terminals (one other process) poll every ``Delay`` (2 s) and punch for
``--poll-s`` seconds.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import broker, machine, table
from bench.procstat import rss_kib
from bench.zk_ingest import _drain_into, _start_sim
from drivers.adms.driver import AdmsDriver
from drivers.adms.hub import Hub
from drivers.adms.listener import AdmsListener
from drivers.adms.options import AdmsOptions, ListenerOptions
from drivers.adms.sim import SimTerminal
from drivers.zk_terminal.driver import ZkDriver
from drivers.zk_terminal.options import ZkOptions
from gateway.pipeline.driver import DriverContext
from gateway.pipeline.runner import TerminalRunner
from gateway.store.db import Store

ROOT = Path(__file__).resolve().parents[1]
TZ = ZoneInfo("Asia/Shanghai")


def _zk(n: int) -> float:
    proc, port = _start_sim(n, "tcp")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(Path(tmp) / "zk.db")
            opts = ZkOptions("127.0.0.1", port, "tcp", poll_interval_s=86400, live=False,
                             timeout_s=30)  # fmt: skip
            d = ZkDriver("bench", opts, DriverContext("bench-gw", TZ))
            t0 = time.perf_counter()
            d.open()
            seen, added = _drain_into(d, store)
            took = time.perf_counter() - t0
            assert (seen, added) == (n, n), (seen, added)
            d.close()
            store.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return took


def _push(server: str, n: int, batch: int) -> float:
    cmd = [sys.executable, "-m", "drivers.adms.sim", "--server", server, "--sn", "BENCHPUSH01",
           "--records", str(n), "--batch", str(batch), "--rate", "0", "--timezone",
           "Asia/Shanghai", "--start", "2026-01-01T00:00:00", "--exit-when-sent",
           "--wait-stdin"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            cwd=ROOT)  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    t0 = time.perf_counter()
    proc.stdin.write("go\n")
    proc.stdin.flush()
    for line in proc.stdout:
        if line.strip() == "sent":
            break
    took = time.perf_counter() - t0
    proc.wait(timeout=30)
    return took


def ingest(n: int, batch: int) -> list[list[object]]:
    ta = _zk(n)
    rows: list[list[object]] = [["a. ZK pull: full log -> store (new)", n, ta, n / ta, 1.0]]
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "gateway.db")
        hub = Hub()
        hub.load(tmp)
        listener = AdmsListener(ListenerOptions(host="127.0.0.1", port=0), hub, zone=TZ)
        listener.start()
        ctx = DriverContext("bench-gw", TZ, data_dir=tmp)
        driver = AdmsDriver("push", AdmsOptions("BENCHPUSH01", reconcile_interval_s=0), ctx, hub)
        runner = TerminalRunner(driver, store, backoff_max_s=0.5)
        server = f"127.0.0.1:{listener.port}"
        try:
            SimTerminal(server, "BENCHPUSH01").handshake()  # it knocked: the runner comes up
            runner.start()
            while runner.state.state != "online":
                time.sleep(0.05)
            tb = _push(server, n, batch)
            (stored,) = store.query("SELECT count(*) FROM punches")[0]
            assert stored == n, stored
            rows.append([f"b. ADMS push over HTTP, {batch}/request, OK after commit (new)", n,
                         tb, n / tb, (n / tb) / (n / ta)])  # fmt: skip
            hub.stamps.clear()  # a stamp reset: the next handshake says 0, all comes again
            tc = _push(server, n, batch)
            assert store.query("SELECT count(*) FROM punches")[0][0] == n
            rows.append(["c. ADMS re-upload of everything (all duplicates)", n, tc, n / tc,
                         (n / tc) / (n / ta)])  # fmt: skip
        finally:
            runner.stop()
            listener.stop()
            store.close()
    return rows


def memory(poll_s: float) -> list[list[object]]:
    with tempfile.TemporaryDirectory() as tmp, broker() as b:
        port = _free_port()
        cfg = Path(tmp) / "gw.toml"
        terms = "".join(
            f'[[terminals]]\nname = "face{i}"\ndriver = "adms"\nserial_number = "MEM-{i}"\n'
            "delay_s = 2\n\n"
            for i in range(1, 21)
        )
        cfg.write_text(
            f'[gateway]\nid = "bench"\ndata_dir = "{tmp}/data"\ntimezone = "Asia/Shanghai"\n'
            f'control_socket = "{tmp}/gw.sock"\ntime_sync = "assume"\n\n'
            f'[mqtt]\nhost = "127.0.0.1"\nport = {b.port}\ntls = false\n\n'
            f'[leds]\nbackend = "null"\n\n[adms]\nlisten = "127.0.0.1:{port}"\n\n{terms}'
        )
        gw = subprocess.Popen(
            [sys.executable, "-m", "gateway", "--config", str(cfg), "run"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
        )
        sims = None
        try:
            time.sleep(10.0)  # settled: imports done, listener up, runners backing off
            idle, _ = rss_kib(gw.pid)
            sims = subprocess.Popen(
                [sys.executable, "-m", "drivers.adms.sim", "--server", f"127.0.0.1:{port}",
                 "--sn", "MEM", "--count", "20", "--rate", "120", "--records", "200",
                 "--duration", str(poll_s)],
                stdout=subprocess.DEVNULL, cwd=ROOT,
            )  # fmt: skip
            peak = 0
            end = time.monotonic() + poll_s
            while time.monotonic() < end:
                cur, _ = rss_kib(gw.pid)
                peak = max(peak, cur)
                time.sleep(1.0)
            busy, _ = rss_kib(gw.pid)
        finally:
            if sims is not None:
                sims.kill()
                sims.wait(10)
            gw.terminate()
            gw.wait(30)
    return [
        ["daemon, 20 push terminals configured, none polling", idle / 1024, 1.0],
        [f"peak while 20 terminals poll (Delay 2 s) and punch, {poll_s:.0f} s", peak / 1024,
         peak / idle],
        ["at the end of that", busy / 1024, busy / idle],
    ]  # fmt: skip


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--records", type=int, default=50_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--poll-s", type=float, default=60.0)
    args = ap.parse_args()
    rows = ingest(args.records, args.batch)
    print(f"Push ingest, {args.records} records (loopback); {machine()}")
    print(table(["path", "records", "seconds", "punches/s", "ratio to (a)"], rows))
    mem = memory(args.poll_s)
    print("\nMemory of the daemon (RSS, MiB)")
    print(table(["situation", "RSS MiB", "ratio to idle"], mem))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
