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
    ("ZK ingest", [str(ROOT / "bench" / "zk_ingest.py")]),
    ("ZK terminal load: light touch vs full downloads", [str(ROOT / "bench" / "zk_touch.py")]),
    ("push (ADMS) ingest and memory", [str(ROOT / "bench" / "adms_ingest.py")]),
    ("push (ADMS) connection flood", [str(ROOT / "bench" / "adms_flood.py")]),
    ("serial throughput and CPU", [str(ROOT / "bench" / "serial_throughput.py")]),
    ("durable commits", ["-m", "bench.durability"]),
    ("memory, 1M backlog", ["-m", "bench.memory"]),
    ("idle CPU", ["-m", "bench.idle"]),
    ("CLI start-up", [str(ROOT / "bench" / "cli_startup.py")]),
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
        if not Path(args[0]).exists() and args[0] != "-m":
            print(f"(skipped: {args[0]} not found)")
            continue
        rc = subprocess.call([sys.executable, *args], cwd=ROOT)
        if rc:
            failed.append(title)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
