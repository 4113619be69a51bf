"""Shared helpers for benchmarks: a private broker, punches, a table printer, machine info."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.devkit.broker import MosquittoBroker
from gateway.pipeline.punch import Punch


def punches(n: int, terminal: str = "bench", start: int = 0) -> Iterator[Punch]:
    t0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    for i in range(start, start + n):
        yield Punch(event_id=f"zk-BENCH0001-{1000 + i % 500}-{i:08d}-0", terminal=terminal,
                    driver="zk", user_id=str(1000 + i % 500), time=t0 + timedelta(seconds=i),
                    state="check_in", state_code=0, verify="fingerprint", verify_code=1,
                    terminal_sn="BENCH0001")


@contextmanager
def broker(**kw: object) -> Iterator[MosquittoBroker]:
    with tempfile.TemporaryDirectory() as d, MosquittoBroker(Path(d), **kw) as b:  # type: ignore[arg-type]
        yield b


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    py = platform.python_version()
    return f"{platform.machine()}, {os.cpu_count()} cores, {cpu}, Python {py}"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [list(map(str, headers))] + [[f"{c:,.0f}" if isinstance(c, float) and c > 100
                                          else (f"{c:.2f}" if isinstance(c, float) else str(c))
                                          for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    out = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def timed(argv: list[str], runs: int) -> float:
    """Median wall time of ``argv`` as a child process over ``runs`` runs (no colour)."""
    env = {**os.environ, "NO_COLOR": "1"}
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, capture_output=True, env=env, check=False)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)
