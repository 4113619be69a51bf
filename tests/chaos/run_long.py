"""The long chaos run: ``python -m tests.chaos.run_long [--rounds 50]`` (``make chaos-long``).

Runs ``pytest -m chaos tests/chaos`` with ``CHAOS_ROUNDS`` (repeated scenarios), ``CHAOS_LONG``
(the 5-minute broker outage) and ``CHAOS_FIGURES`` set, then prints the figures of every
scenario as the Markdown table of docs/reliability.md. Exit status: pytest's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COLUMNS = ["scenario", "rounds", "produced", "delivered", "lost", "duplicates", "recovery_s"]


def table(lines: list[dict]) -> str:
    out = ["| " + " | ".join([*COLUMNS, "other figures"]) + " |",
           "|" + "---|" * (len(COLUMNS) + 1)]
    for d in lines:
        lost = d.get("lost", d.get("lost_committed"))
        row = [str(d.get(c, "")) for c in COLUMNS]
        row[COLUMNS.index("lost")] = str(lost)
        other = {k: v for k, v in d.items() if k not in [*COLUMNS, "test", "lost_committed"]}
        out.append("| " + " | ".join([*row, json.dumps(other)]) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.chaos.run_long", description=__doc__)
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("CHAOS_ROUNDS", "50")))
    ap.add_argument("--short", action="store_true", help="the CI-sized run (no CHAOS_ROUNDS)")
    ap.add_argument("--workers", default="2")
    ap.add_argument("--figures", default=None, help="JSON-lines file (default: a temp file)")
    ap.add_argument("pytest_args", nargs="*", help="extra pytest arguments (e.g. -k sigkill)")
    args = ap.parse_args(argv)
    figures = Path(args.figures or tempfile.mkstemp(prefix="chaos-", suffix=".jsonl")[1])
    figures.write_text("")
    env = {**os.environ, "CHAOS_FIGURES": str(figures)}
    if args.short:
        env.pop("CHAOS_ROUNDS", None)
        env.pop("CHAOS_LONG", None)
    else:
        env |= {"CHAOS_ROUNDS": str(args.rounds), "CHAOS_LONG": "1"}
    t0 = time.monotonic()
    rc = subprocess.call(
        [sys.executable, "-m", "pytest", "-m", "chaos", "tests/chaos", "-n", args.workers,
         "-q", "-o", "timeout=3600", *args.pytest_args], env=env)
    lines = [json.loads(x) for x in figures.read_text().splitlines() if x.strip()]
    size = "CI-sized" if args.short else f"{args.rounds} rounds"
    took = time.monotonic() - t0
    print(f"\nchaos run: {size}, {took:.0f} s, exit {rc}, figures in {figures}\n")
    print(table(lines))
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
