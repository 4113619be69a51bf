"""Durable commits: punches per fsync during a burst, and bytes written per punch (SD wear).

Each scenario runs in a child process under ``strace -f -c`` (fsync/fdatasync counted by the
kernel's view, not estimated) with ``/proc/self/io`` write_bytes for bytes that reach the block
layer. Baseline in the same run: one transaction per punch, the naive outbox.

    .venv/bin/python -m bench.durability [--n 20000]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import machine, table

CHILD = r"""
import json, sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from bench.common import punches
from gateway.store.db import Store
mode, n, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = Store(path)
ps = list(punches(n))
def wb():
    return int([l for l in Path("/proc/self/io").read_text().splitlines()
                if l.startswith("write_bytes")][0].split()[1])
b0 = wb(); t0 = time.perf_counter()
if mode == "per-punch":
    for p in ps: s.add([p])
elif mode == "zk-batches":
    for i in range(0, n, 5000): s.add(ps[i:i + 5000])
elif mode == "drain-acks":
    for i in range(0, n, 5000): s.add(ps[i:i + 5000])
    b0 = wb(); t0 = time.perf_counter()
    # acks arrive a window at a time: 20 messages x 50 punches per transaction
    for i in range(1, n + 1, 1000): s.mark_delivered(range(i, min(i + 1000, n + 1)))
dt = time.perf_counter() - t0
s.close()
print(json.dumps({{"bytes": wb() - b0, "seconds": dt}}))
"""


def run(mode: str, n: int, tmp: Path) -> dict[str, float]:
    script = tmp / "child.py"
    script.write_text(CHILD.format(root=str(Path(__file__).resolve().parents[1])))
    db = tmp / f"{mode}.db"
    cmd = [sys.executable, str(script), mode, str(n), str(db)]
    fsyncs = None
    if shutil.which("strace"):
        out = subprocess.run(["strace", "-f", "-c", "-e", "trace=fsync,fdatasync", "-o",
                              str(tmp / f"{mode}.strace"), *cmd],
                             capture_output=True, text=True, check=True)
        text = (tmp / f"{mode}.strace").read_text()
        fsyncs = sum(int(m.group(1)) for m in re.finditer(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)"
                                                           r"\s+(?:\d+\s+)?f(?:data)?sync",
                                                           text, re.M))
    else:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["fsyncs"] = fsyncs if fsyncs is not None else float("nan")
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000)
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for mode, label, n in (("per-punch", "baseline: 1 transaction per punch", 2000),
                               ("zk-batches", "ZK reconciliation, 5000 per commit", args.n),
                               ("drain-acks", "acks marked delivered, 1000 per commit",
                                args.n)):
            r = run(mode, n, Path(d))
            rows.append([label, n, r["fsyncs"], n / r["fsyncs"] if r["fsyncs"] else "-",
                         r["bytes"] / n, n / r["seconds"]])
    print(f"durable commits (WAL, synchronous=FULL) — {machine()}\n")
    print(table(["scenario", "punches", "fsyncs", "punches/fsync", "bytes written/punch",
                 "punches/s"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
