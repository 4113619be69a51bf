"""Peak RSS of the daemon with 4 terminals and a 1 000 000-punch backlog.

The store is pre-filled with N pending punches; the daemon starts with 4 terminals (2 ZK
simulators with 20 000-record logs to reconcile, 2 virtual) while the broker is unreachable,
then the broker comes back and the whole backlog drains. VmHWM (peak RSS) is read from /proc.
Baseline in the same run: the RSS of a bare ``python -c 'import paho, pyzk, serial, structlog'``.

    .venv/bin/python -m bench.memory [--n 1000000]
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import broker, machine, punches, table
from bench.procstat import rss_kib
from gateway.devkit.proxy import TcpProxy
from gateway.store.db import Store
from tests.pipeline.harness import GatewayProcess, write_config


def prefill(db: Path, n: int) -> float:
    t0 = time.perf_counter()
    s = Store(db)
    it = punches(n, terminal="old")
    while chunk := [p for _, p in zip(range(20000), it, strict=False)]:
        s.add(chunk)
    s.close()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    args = ap.parse_args(argv)
    from drivers.zk_terminal.sim import ZkSimulator

    base = subprocess.run(
        [sys.executable, "-c", "import paho.mqtt.client, zk, serial, structlog, sqlite3;"
         "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])"],
        capture_output=True, text=True, check=True)
    base_kib = int(base.stdout.strip())
    with tempfile.TemporaryDirectory() as d, broker() as b, contextlib.ExitStack() as stack:
        tmp = Path(d)
        fill_s = prefill(tmp / "data" / "gateway.db", args.n)
        proxy = TcpProxy("127.0.0.1", b.port)
        stack.callback(proxy.stop)
        proxy.refuse()  # broker unreachable at first: the backlog just sits there
        terminals: list[dict[str, object]] = []
        for i in range(2):
            zk = stack.enter_context(ZkSimulator(serial=f"BENCH{i:09d}"))
            zk.bulk_load(20000, users=200)
            terminals.append({"name": f"zk{i}", "driver": "zk", "host": "127.0.0.1",
                              "port": zk.port})
        terminals += [{"name": f"virt{i}", "driver": "virtual", "rate": 1} for i in range(2)]
        cfg = write_config(tmp / "gw.toml", gateway={"data_dir": str(tmp / "data"),
                                                     "control_socket": str(tmp / "c.sock")},
                           mqtt={"host": "127.0.0.1", "port": proxy.port,
                                 "max_publish_rate": 100000}, terminals=terminals)
        with GatewayProcess(cfg, tmp / "gw.log") as gw:
            assert gw.proc is not None
            time.sleep(15)
            buffering = rss_kib(gw.proc.pid)
            proxy.restore()
            t0 = time.monotonic()
            ro = Store(tmp / "data" / "gateway.db", readonly=True)
            while ro.figures()["pending"] > 5 and time.monotonic() - t0 < 900:
                time.sleep(1.0)
            drain_s = time.monotonic() - t0
            ro.close()
            peak = rss_kib(gw.proc.pid)
            gw.terminate()
    print(f"memory — {machine()}\n")
    print(f"pre-filled {args.n:,} pending punches in {fill_s:.1f} s; drained in {drain_s:.1f} s\n")
    print(table(["process", "RSS MiB", "peak RSS MiB"], [
        ["python + imports only (baseline)", "-", f"{base_kib / 1024:.1f}"],
        ["gateway, 4 terminals, backlog buffering", f"{buffering[0] / 1024:.1f}",
         f"{buffering[1] / 1024:.1f}"],
        ["gateway, after draining the backlog", f"{peak[0] / 1024:.1f}",
         f"{peak[1] / 1024:.1f}"],
    ]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
