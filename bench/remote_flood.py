"""Remote-command flood benchmark (issue 16): card-swipe → broker latency with and without a
flood of 1 000 signed remote commands, against the real daemon process.

A simulated EM4100 reader on a pty (real pyserial in the daemon) gets one swipe every 50 ms;
a subscriber stamps each punch's arrival. Baseline: the same swipes, no commands, same
daemon, same run. Then 1 000 valid signed ``status`` commands published as fast as the
broker takes them while the swipes go on: once with the default ``rate_per_min`` (the flood
is mostly dropped, counted) and once with the limit at its maximum (6 000/min: every
command verified, audited, run and answered). Ratios are flood p95 / baseline p95.

    .venv/bin/python -m bench.remote_flood [--swipes 150] [--commands 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.common import broker, machine, table
from drivers.serial_reader.sim import ReaderSim
from gateway.devkit.subscriber import Subscriber
from gateway.remote import envelope as env

GW = "bench-gw"
BASE = f"attendance/{GW}"


def config(tmp: Path, port: int, reader: str, public: str, rate: int) -> Path:
    p = tmp / f"gw-{rate}.toml"
    p.write_text(f"""
[gateway]
id = "{GW}"
timezone = "UTC"
time_sync = "assume"
data_dir = "{tmp / f"data-{rate}"}"
control_socket = "{tmp / f"gw-{rate}.sock"}"
[mqtt]
host = "127.0.0.1"
port = {port}
tls = false
[leds]
backend = "null"
[[terminals]]
name = "door"
driver = "serial"
port = "{reader}"
framing = "em4100"
debounce_s = 0
[remote]
rate_per_min = {rate}
[[remote.keys]]
name = "bench"
public_key = "{public}"
verbs = ["*"]
""")
    return p


def flood(port: int, key: Any, n: int) -> threading.Thread:
    now = datetime.now(UTC)
    msgs = [json.dumps(env.make("status", {}, issuer="bench", issued_at=now,
                                expires_at=now + timedelta(minutes=10), cmd_id=f"flood-{i}",
                                key=key)).encode() for i in range(n)]

    def run() -> None:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-flood-{time.time_ns()}",
                        protocol=mqtt.MQTTv5)
        c.max_inflight_messages_set(100)
        c.connect("127.0.0.1", port)
        c.loop_start()
        infos = [c.publish(f"{BASE}/cmd/req", m, qos=1) for m in msgs]
        for info in infos:
            info.wait_for_publish(60)
        c.disconnect()
        c.loop_stop()

    t = threading.Thread(target=run, name="bench-flood")
    return t


def swipes(reader: ReaderSim, sub: Subscriber, n: int, first: int) -> list[float]:
    """Swipe ``n`` cards 50 ms apart; return each punch's swipe→arrival latency (s)."""
    sent: dict[str, float] = {}
    for i in range(first, first + n):
        sent[str(i)] = time.monotonic()
        reader.swipe(f"{0x0200000000 + i:010X}")
        time.sleep(0.05)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        got = {p["user_id"] for p in sub.punches()}
        if set(sent) <= got:
            break
        time.sleep(0.1)
    arrivals: dict[str, float] = {}
    for m in sub.on(f"{BASE}/punches"):
        for p in m.json()["punches"]:
            arrivals.setdefault(p["user_id"], m.received_mono)
    return [arrivals[k] - t for k, t in sent.items() if k in arrivals]


def stats(lat: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(lat, n=100)
    return statistics.median(lat) * 1000, q[94] * 1000, max(lat) * 1000


def audit(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        done = conn.execute("SELECT count(*) FROM remote_audit WHERE outcome='done'").fetchone()
        dropped = sum(int(d.split(" ")[0]) for (d,) in conn.execute(
            "SELECT detail FROM remote_audit WHERE outcome='dropped'"))
        return {"answered": done[0], "dropped": dropped}
    finally:
        conn.close()


def run_daemon(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    fh = log.open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "--config", str(cfg), "run"],
                            stdout=fh, stderr=subprocess.STDOUT,
                            env={**os.environ, "NO_COLOR": "1"})
    fh.close()
    deadline = time.monotonic() + 60
    while "remote commands on" not in log.read_text() or "serial port open" not in log.read_text():
        if time.monotonic() > deadline:
            raise SystemExit(f"daemon did not start: {log.read_text()[-2000:]}")
        time.sleep(0.2)
    time.sleep(1.0)
    return proc


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--swipes", type=int, default=150)
    ap.add_argument("--commands", type=int, default=1000)
    a = ap.parse_args()
    key = env.new_private_key()
    rows: list[list[Any]] = []
    with tempfile.TemporaryDirectory() as d, broker() as b:
        tmp = Path(d)
        reader = ReaderSim("em4100", seed=1)
        reader.start()
        base_p95 = 0.0
        card = 1
        for rate in (30, 6000):
            cfg = config(tmp, b.port, reader.path, env.public_key_text(key), rate)
            sub = Subscriber("127.0.0.1", b.port, [f"{BASE}/punches"]).start()
            proc = run_daemon(cfg, tmp / f"gw-{rate}.log")
            try:
                if rate == 30:
                    lat = swipes(reader, sub, a.swipes, card)
                    card += a.swipes
                    p50, p95, mx = stats(lat)
                    base_p95 = p95
                    rows.append(["no commands (baseline)", len(lat), p50, p95, mx, 1.0, "-"])
                sub.clear()
                t = flood(b.port, key, a.commands)
                t.start()
                lat = swipes(reader, sub, a.swipes, card)
                card += a.swipes
                t.join(120)
                time.sleep(12)  # the remote thread audits a burst of drops every 10 s
                p50, p95, mx = stats(lat)
                fig = audit(tmp / f"data-{rate}" / "gateway.db")
                rows.append([f"flood of {a.commands}, rate_per_min={rate}", len(lat), p50, p95,
                             mx, p95 / base_p95,
                             f"{fig['answered']} answered, {fig['dropped']} dropped"])
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
                sub.stop()
        reader.close()
    print(f"machine: {machine()}")
    print(table(["phase", "punches", "p50 ms", "p95 ms", "max ms", "p95 ratio", "commands"],
                rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
