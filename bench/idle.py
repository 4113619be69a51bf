"""Idle CPU: the daemon with 4 idle terminals and the LED engine running, averaged over 60 s.

Terminals: 2 ZK simulators (live events on, nobody punching) and 2 idle virtual terminals;
LED backend "null" (the pattern engine and its thread run exactly as on a Pi; only the pin
writes are no-ops). Baseline in the same run: a Python process that only sleeps.

    .venv/bin/python -m bench.idle [--seconds 60]
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import broker, machine, table
from bench.procstat import cpu_seconds, rss_kib
from tests.pipeline.harness import GatewayProcess, write_config


def measure(pid: int, seconds: float) -> float:
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - c0) / (time.monotonic() - t0) * 100


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args(argv)
    from drivers.zk_terminal.sim import ZkSimulator

    with tempfile.TemporaryDirectory() as d, broker() as b, contextlib.ExitStack() as stack:
        tmp = Path(d)
        terminals: list[dict[str, object]] = []
        for i in range(2):
            zk = stack.enter_context(ZkSimulator(serial=f"BENCH{i:09d}"))
            zk.bulk_load(1000, users=200)
            terminals.append({"name": f"zk{i}", "driver": "zk", "host": "127.0.0.1",
                              "port": zk.port, "live": True, "poll_interval_s": 300})
        terminals += [{"name": f"virt{i}", "driver": "virtual"} for i in range(2)]
        cfg = write_config(tmp / "gw.toml", gateway={"data_dir": str(tmp / "data"),
                                                     "health_interval_s": 60,
                                                     "control_socket": str(tmp / "c.sock")},
                           mqtt={"host": "127.0.0.1", "port": b.port}, terminals=terminals)
        sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1e6)"])
        with GatewayProcess(cfg, tmp / "gw.log") as gw:
            assert gw.proc is not None
            time.sleep(10)  # start-up, first reconciliation and connect are not "idle"
            base = measure(sleeper.pid, 5.0)
            ours = measure(gw.proc.pid, args.seconds)
            rss = rss_kib(gw.proc.pid)
            gw.terminate()
        sleeper.kill()
    print(f"idle CPU — {machine()}\n")
    print(table(["process", "CPU % of one core", "RSS MiB"], [
        ["python sleeping (baseline)", f"{base:.3f}", "-"],
        [f"gateway, 4 idle terminals, LEDs, {args.seconds:.0f} s", f"{ours:.3f}",
         f"{rss[0] / 1024:.1f}"],
    ]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
