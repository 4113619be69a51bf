"""``python -m bench`` (``make bench``): every benchmark, one after the other, figures printed.

Each figure is measured beside its baseline in the same run; docs/performance.md records the
results and the machine. Long runs: allow ~10 minutes in all.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

RUNS: list[tuple[str, list[str]]] = [
    ("drain, local broker", ["-m", "bench.drain", "--n", "100000"]),
    ("drain, 50 ms RTT", ["-m", "bench.drain", "--n", "100000", "--rtt-ms", "50"]),
    ("ZK ingest", ["-m", "bench.zk_ingest"]),
    ("ZK terminal load: light touch vs full downloads", ["-m", "bench.zk_touch"]),
    ("push (ADMS) ingest and memory", ["-m", "bench.adms_ingest"]),
    ("push (ADMS) connection flood", ["-m", "bench.adms_flood"]),
    ("serial throughput and CPU", ["-m", "bench.serial_throughput"]),
    ("durable commits", ["-m", "bench.durability"]),
    ("memory, 1M backlog", ["-m", "bench.memory"]),
    ("idle CPU", ["-m", "bench.idle"]),
    ("CLI start-up", ["-m", "bench.cli_startup"]),
    ("remote commands: punch latency under a flood", ["-m", "bench.remote_flood"]),
    ("status vs store size", ["-m", "bench.status_scale"]),
    ("reconnect storm, restricted cloud profile", ["-m", "bench.cloud_storm"]),
    ("SD-card writes: idle and per punch", ["-m", "bench.sd_writes"]),
]


def main() -> int:
    failed = []
    only = sys.argv[1:]
    for title, args in RUNS:
        if only and not any(o in title for o in only):
            continue
        print(f"\n=== {title}", flush=True)
        rc = subprocess.call([sys.executable, *args], cwd=ROOT)
        if rc:
            failed.append(title)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
