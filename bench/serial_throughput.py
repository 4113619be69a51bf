"""Serial path throughput and CPU: pty → SerialDriver → TerminalRunner → committed Store rows.

Run: ``.venv/bin/python bench/serial_throughput.py [--frames 5000] [--seconds 10]``

1. Baseline: the em4100 codec alone, in memory (frames/s it can decode).
2. Max rate: a writer blasts distinct em4100 frames into a pty as fast as the pty takes them;
   frames/s until every one is a committed row (WAL, synchronous=FULL; one transaction per
   ``read()`` batch, as the runner does). A real line caps this far lower: 115200 baud 8N1
   carries 822 em4100 frames/s, 9600 baud 68/s.
3. CPU: process CPU time (time.process_time) of the gateway side over a fixed wall period,
   idle and at a realistic 5 swipes/s (the simulator runs in a separate process so its CPU is
   not counted). Printed as % of one core, and the 5/s figure as a ratio to idle.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drivers.serial_reader.driver import SerialDriver
from drivers.serial_reader.em4100 import Em4100Codec
from drivers.serial_reader.options import SerialOptions
from drivers.serial_reader.sim import ReaderSim
from gateway.pipeline.driver import DriverContext
from gateway.pipeline.runner import TerminalRunner
from gateway.store.db import Store

CTX = DriverContext("bench-gw", ZoneInfo("Asia/Shanghai"))


def cards(n: int) -> list[str]:
    return [f"01{i:08X}" for i in range(n)]


def codec_baseline(n: int) -> float:
    codec = Em4100Codec()
    stream = b"".join(codec.encode(c) for c in cards(n))
    t0 = time.perf_counter()
    for i in range(0, len(stream), 4096):
        codec.feed(stream[i : i + 4096])
    dt = time.perf_counter() - t0
    assert codec.counters.frames == n
    return n / dt


def rows(store: Store) -> int:
    return int(store.query("SELECT count(*) FROM punches")[0][0])


def wait_rows(store: Store, n: int, deadline_s: float = 300) -> None:
    end = time.monotonic() + deadline_s
    while rows(store) < n:
        if time.monotonic() > end:
            raise SystemExit(f"only {rows(store)} of {n} rows committed")
        time.sleep(0.01)


def wait_online(runner: TerminalRunner) -> None:
    end = time.monotonic() + 60
    while runner.state.state != "online":
        if time.monotonic() > end:
            raise SystemExit(f"runner never came online: {runner.state.detail}")
        time.sleep(0.01)


def max_rate(n: int, work: Path) -> tuple[float, float]:
    """(frames/s committed, CPU s per 1000 frames)."""
    with ReaderSim("em4100") as sim:
        opts = SerialOptions(port=sim.path, framing="em4100", debounce_s=0)
        store = Store(work / "max.db")
        runner = TerminalRunner(SerialDriver("bench", opts, CTX), store)
        runner.start()
        wait_online(runner)
        frames = [Em4100Codec().encode(c) for c in cards(n)]
        writer = threading.Thread(
            target=lambda: [sim.write(f) for f in frames], name="bench-writer", daemon=True
        )
        c0, t0 = time.process_time(), time.perf_counter()
        writer.start()
        wait_rows(store, n)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        writer.join()
        runner.stop()
        store.close()
    return n / dt, cpu / n * 1000


def cpu_at_rate(rate: float | None, seconds: float, work: Path) -> tuple[float, int]:
    """(% of one core, rows committed) over ``seconds`` with a simulator process at ``rate``."""
    args = [sys.executable, "-m", "drivers.serial_reader.sim", "--framing", "em4100", "--pty"]
    if rate:
        args += ["--rate", str(rate)]
    sim = subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        assert sim.stdout is not None
        path = sim.stdout.readline().strip()
        opts = SerialOptions(port=path, framing="em4100", debounce_s=0)
        store = Store(work / f"cpu-{rate}.db")
        runner = TerminalRunner(SerialDriver("bench", opts, CTX), store)
        runner.start()
        wait_online(runner)
        time.sleep(1.0)  # settle
        before = rows(store)
        c0, t0 = time.process_time(), time.perf_counter()
        time.sleep(seconds)
        cpu, wall = time.process_time() - c0, time.perf_counter() - t0
        committed = rows(store) - before
        runner.stop()
        store.close()
    finally:
        sim.terminate()
        sim.wait(20)
    return 100 * cpu / wall, committed


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--frames", type=int, default=5000)
    p.add_argument("--seconds", type=float, default=10.0)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="serial-bench-") as tmp:
        work = Path(tmp)
        base = codec_baseline(max(args.frames, 20000))
        rate, cpu_per_k = max_rate(args.frames, work)
        idle, _ = cpu_at_rate(None, args.seconds, work)
        busy, committed = cpu_at_rate(5.0, args.seconds, work)
    print(f"serial throughput bench ({os.cpu_count()} CPUs, {args.frames} frames, "
          f"{args.seconds:g} s CPU windows)")
    print(f"{'measure':<52} {'value':>14}")
    print("-" * 67)
    print(f"{'codec only, em4100 decode (baseline)':<52} {base:>10,.0f} f/s")
    print(f"{'pty → driver → runner → committed rows':<52} {rate:>10,.0f} f/s")
    print(f"{'  ratio to codec baseline':<52} {rate / base:>14.3f}")
    print(f"{'  CPU per 1000 frames committed':<52} {cpu_per_k:>12.3f} s")
    print(f"{'  headroom over 115200 baud line (822 f/s)':<52} {rate / 822:>13.1f}x")
    print(f"{'CPU, idle (port open, no swipes)':<52} {idle:>12.2f} %")
    print(f"{'CPU at 5 swipes/s (' + str(committed) + ' rows committed)':<52} {busy:>12.2f} %")
    print(f"{'  ratio to idle':<52} {busy / idle if idle else float('inf'):>14.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
