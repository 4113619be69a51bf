"""``gatewayctl status`` start-up time against ``python -c pass`` (the baseline), with the
daemon running and stopped, plus the heaviest imports of ``status``.

Usage: ``.venv/bin/python -m bench.cli_startup [--runs N]``. Prints medians and ratios to the
baseline measured in the same run (noisy machines: compare ratios, not seconds).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import broker, machine, table, timed
from tests.pipeline.harness import GatewayProcess, wait_until, write_config, write_punch_file


def heaviest_imports(argv: list[str], n: int = 8) -> list[tuple[str, int]]:
    r = subprocess.run([sys.executable, "-X", "importtime", *argv[1:]], capture_output=True,
                       text=True, check=False)
    rows = []
    for line in r.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = (p.strip() for p in line[12:].split("|"))
            if cumulative.isdigit() and not name.startswith(" "):
                rows.append((name, int(cumulative)))
    top = [r for r in rows if "." not in r[0]]
    return sorted(top, key=lambda r: -r[1])[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d, broker(plain=True) as b:
        tmp = Path(d)
        write_punch_file(tmp / "p.jsonl", 200)
        cfg = write_config(
            tmp / "gw.toml",
            gateway={"data_dir": str(tmp / "data"), "control_socket": str(tmp / "c.sock")},
            mqtt={"host": "127.0.0.1", "port": b.port},
            terminals=[{"name": "lobby", "driver": "virtual", "file": str(tmp / "p.jsonl")}],
        )
        status = [sys.executable, "-m", "gateway", "--config", str(cfg), "status"]
        baseline = timed([sys.executable, "-c", "pass"], args.runs)
        gp = GatewayProcess(cfg, tmp / "gw.log").start()
        try:
            wait_until(lambda: (tmp / "c.sock").exists(), 30, "control socket")
            time.sleep(1.0)
            running = timed(status, args.runs)
            running_json = timed([*status[:-1], "--json", "status"], args.runs)
        finally:
            gp.terminate()
        stopped = timed(status, args.runs)
        zk_cfg = write_config(  # what a real branch has: its drivers import pyzk, structlog...
            tmp / "zk.toml", gateway={"data_dir": str(tmp / "data")},
            mqtt={"host": "127.0.0.1", "port": b.port},
            terminals=[{"name": "lobby", "driver": "zk", "host": "127.0.0.1"},
                       {"name": "door", "driver": "serial", "port": "/dev/null"}])
        full_cfg = timed([sys.executable, "-c", "import gateway.config as c; "
                          f"c.load({str(zk_cfg)!r})"], args.runs)
        imports = heaviest_imports(status)
    rows = [
        ["python -c pass (baseline)", f"{baseline * 1000:.0f}", "1.00"],
        ["gatewayctl status, daemon running", f"{running * 1000:.0f}", f"{running / baseline:.2f}"],
        ["gatewayctl --json status, running", f"{running_json * 1000:.0f}",
         f"{running_json / baseline:.2f}"],
        ["gatewayctl status, daemon stopped", f"{stopped * 1000:.0f}", f"{stopped / baseline:.2f}"],
        ["(for scale) config.load, zk + serial", f"{full_cfg * 1000:.0f}",
         f"{full_cfg / baseline:.2f}"],
    ]
    print(f"{machine()}; median of {args.runs} runs\n")
    print(table(["command", "median ms", "x baseline"], rows))
    print("\nheaviest top-level imports of `status` (cumulative µs):")
    print(table(["module", "µs"], imports))


if __name__ == "__main__":
    main()
