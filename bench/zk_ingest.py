"""ZK log ingest: a 100 000-record terminal log, pyzk alone vs. the driver into the store.

Run: ``.venv/bin/python bench/zk_ingest.py [--records 100000] [--transport tcp]``

The simulator runs in a separate process (``python -m drivers.zk_terminal.sim``) so its CPU
does not count against the gateway side, with ``--bulk-framing single --frame-gap-ms 0``: one
DATA frame per 64 KB chunk, no terminal pace. This measures the gateway side only; with a
terminal's framing unmodified pyzk needs the terminal's pace (issue 14,
``bench/zk_touch.py`` for what the terminal spends). Figures, all in punches/s:

a. Baseline: unmodified pyzk ``get_attendance()`` (download + parse into Attendance objects;
   it also downloads the user table).
b. The driver's full reconciliation on ``open()``: download, tolerant parse, Punch objects in
   batches of ≤ 5000, each batch committed to the durable ``gateway.store.db.Store`` (WAL,
   synchronous=FULL) in one transaction, as the runner does.
c. A later poll of the same log: downloaded again, the committed prefix is skipped.
d. A technician's ``pull``: the whole log handed out again, all duplicates in the store.

The ratio b/a is what durability, tolerance and bounded batches cost over pyzk's bare parse.
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

from zk import ZK

from bench.common import machine, table
from drivers.zk_terminal.driver import ZkDriver
from drivers.zk_terminal.options import ZkOptions
from gateway.pipeline.driver import DriverContext
from gateway.store.db import Store


def _start_sim(records: int, transport: str) -> tuple[subprocess.Popen[str], int]:
    cmd = [sys.executable, "-m", "drivers.zk_terminal.sim", "--port", "0", "--records",
           str(records), "--transport", transport, "--serial", "BENCH000001",
           "--users", "500", "--capacity", str(max(records * 2, 100_000)),
           "--bulk-framing", "single", "--frame-gap-ms", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "port" not in line:
        proc.kill()
        raise SystemExit(f"simulator did not start: {line!r}")
    return proc, int(line.rsplit("port", 1)[1].strip())


def _drain_into(driver: ZkDriver, store: Store) -> tuple[int, int]:
    seen = added = 0
    while batch := driver.read(0.01):
        seen += len(batch)
        added += store.add(batch)
    return seen, added


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--transport", choices=("tcp", "udp"), default="tcp")
    args = ap.parse_args()
    n = args.records
    proc, port = _start_sim(n, args.transport)
    rows: list[list[object]] = []
    try:
        z = ZK("127.0.0.1", port, timeout=30, ommit_ping=True,
               force_udp=args.transport == "udp").connect()
        t0 = time.perf_counter()
        att = z.get_attendance()
        ta = time.perf_counter() - t0
        z.disconnect()
        assert len(att) == n, len(att)
        del att
        rows.append(["a. pyzk get_attendance()", n, ta, n / ta, 1.0])

        with tempfile.TemporaryDirectory() as tmp:
            store = Store(Path(tmp) / "bench.db")
            opts = ZkOptions("127.0.0.1", port, args.transport, poll_interval_s=86400,
                             live=False, timeout_s=30,
                             full_download_interval_s=0)  # c. downloads (issue 14: zk_touch)
            d = ZkDriver("bench", opts, DriverContext("bench-gw", ZoneInfo("Asia/Shanghai")))
            t0 = time.perf_counter()
            d.open()
            seen, added = _drain_into(d, store)
            tb = time.perf_counter() - t0
            assert (seen, added) == (n, n), (seen, added)
            rows.append(["b. driver reconcile -> store (new)", n, tb, n / tb, (n / tb) / (n / ta)])

            d._next_poll = 0.0  # the next periodic poll, now
            t0 = time.perf_counter()
            seen, added = _drain_into(d, store)
            tc = time.perf_counter() - t0
            assert added == 0
            rows.append([f"c. poll, committed prefix skipped ({seen} handed out)", n, tc,
                         n / tc, (n / tc) / (n / ta)])

            t0 = time.perf_counter()
            d.pull()
            seen, added = _drain_into(d, store)
            td = time.perf_counter() - t0
            assert (seen, added) == (n, 0), (seen, added)
            rows.append(["d. pull: full re-read, all duplicates", n, td, n / td,
                         (n / td) / (n / ta)])
            d.close()
            store.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print(f"ZK ingest, {n} records of 40 bytes over {args.transport} (loopback); {machine()}")
    print(table(["path", "records", "seconds", "punches/s", "ratio to (a)"], rows))
    print(f"\nratio b/a = {rows[1][4]:.2f}  (driver into the durable store vs. pyzk parse alone)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
