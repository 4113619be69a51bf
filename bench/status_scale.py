"""``gatewayctl status`` and ``gatewayctl queue`` wall time against the store's size
(issue 13: the figures must not scan rows).

Usage: ``.venv/bin/python -m bench.status_scale [--sizes 10000,100000,1000000] [--runs N]``.
For each size a store is filled (95 % delivered, 4 % pending, 1 % dead, three terminals),
then both commands run with the daemon stopped (the path that reads the store itself) and
are timed beside ``python -c pass`` measured in the same run; the ratios are the figures
to compare (noisy machines).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import machine, table, timed
from gateway.store.db import Store, iso_utc

try:
    from gateway.store.schema import recount
except ImportError:  # run against a tree before schema v3, for comparison

    def recount(conn: sqlite3.Connection) -> None:
        pass
from tests.pipeline.harness import write_config


def fill(db: Path, n: int) -> None:
    """``n`` rows of realistic wire JSON, as fast as SQLite allows (bench only)."""
    Store(db).close()  # the schema, triggers included
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    now = datetime.now(UTC)
    t0 = now - timedelta(days=20)
    step = (now - t0) / n
    batch = 50_000
    for lo in range(0, n, batch):
        rows = []
        for i in range(lo, min(n, lo + batch)):
            seq = i + 1
            at = iso_utc(t0 + step * i)
            status = 1 if i < n * 0.95 else (0 if i < n * 0.99 else 2)
            terminal = ("lobby", "side-door", "canteen")[i % 3]
            rec = json.dumps({"event_id": f"zk-SN-{i}", "terminal": terminal, "user_id":
                              str(1000 + i % 300), "time": at, "state": "check_in",
                              "seq": seq, "received_at": at}, separators=(",", ":"))
            rows.append((seq, f"zk-SN-{i}", terminal, rec, at, status,
                         at if status == 1 else None, "refused" if status == 2 else None))
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO punches(seq, event_id, terminal, record, received_at, status,"
            " delivered_at, dead_reason) VALUES (?,?,?,?,?,?,?,?)", rows)
        conn.execute("COMMIT")
    conn.execute("UPDATE meta SET value=? WHERE key='next_seq'", (str(n + 1),))
    if "counters" in {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}:
        conn.execute("BEGIN")
        recount(conn)  # rows written around Store: bring its O(1) figures in line
        conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        baseline = timed([sys.executable, "-c", "pass"], args.runs)
        rows.append(["python -c pass (baseline)", "-", f"{baseline * 1000:.0f}", "1.00"])
        for n in sizes:
            data = tmp / f"data-{n}"
            data.mkdir()
            t0 = time.perf_counter()
            fill(data / "gateway.db", n)
            filled = time.perf_counter() - t0
            cfg = write_config(
                tmp / f"gw-{n}.toml",
                gateway={"data_dir": str(data), "control_socket": str(tmp / f"c-{n}.sock")},
                mqtt={"host": "127.0.0.1", "port": 1},
                terminals=[{"name": t, "driver": "virtual"}
                           for t in ("lobby", "side-door", "canteen")],
            )
            base = [sys.executable, "-m", "gateway", "--config", str(cfg)]
            check = subprocess.run([*base, "queue", "--json"], capture_output=True, text=True,
                                   check=False)
            fig = json.loads(check.stdout)
            assert fig["last_seq"] == n and fig["pending"] == round(n * 0.04), fig
            base_ratio = timed([sys.executable, "-c", "pass"], args.runs)  # drift check
            status = timed([*base, "status"], args.runs)
            queue = timed([*base, "queue"], args.runs)
            mb = (data / "gateway.db").stat().st_size / 2**20
            rows.append([f"status, {n:,} rows ({mb:.0f} MB, filled in {filled:.0f} s)",
                         f"{n:,}", f"{status * 1000:.0f}", f"{status / base_ratio:.2f}"])
            rows.append([f"queue, {n:,} rows", f"{n:,}", f"{queue * 1000:.0f}",
                         f"{queue / base_ratio:.2f}"])
    print(f"{machine()}; median of {args.runs} runs; daemon stopped (reads the store)\n")
    print(table(["command", "rows", "median ms", "x python -c pass"], rows))


if __name__ == "__main__":
    main()
