"""Drain benchmark: N stored punches until all are acked by a local mosquitto.

Baseline in the same run: bare paho publishing one punch per QoS 1 message with the same
in-flight window. Optionally through a latency proxy (``--rtt-ms 50``) to show that batching,
not CPU, is what makes a backlog drain over a real WAN.

    .venv/bin/python -m bench.drain --n 100000 [--rtt-ms 50]

Issue 18, a week's backlog under AWS IoT's limits (100 publishes/s, 128 KB per message, as
the ``aws-iot`` profile sets them): ``--aws --n 140000``. Baseline in the same run: the same
drain with messages of ``batch_max_punches`` (no filling to the byte limit).

    .venv/bin/python -m bench.drain --aws --n 140000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.common import broker, machine, punches, table
from gateway.config import MqttSection
from gateway.devkit.proxy import TcpProxy
from gateway.store.db import Store
from gateway.uplink.publisher import Publisher


def bare_paho(port: int, n: int, window: int) -> float:
    """One punch per QoS 1 message, at most ``window`` awaiting PUBACK; return punches/s.

    The window is kept by the caller (a semaphore released in on_publish): handing paho all
    ``n`` messages at once makes it rescan its whole queue on every ack, which is quadratic.
    """
    records = [json.dumps(p.to_record()).encode() for p in punches(n)]
    done = threading.Event()
    slots = threading.Semaphore(window)
    acked = 0

    def on_publish(*_a: object) -> None:
        nonlocal acked
        acked += 1
        slots.release()
        if acked == n:
            done.set()

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(window)
    c.on_publish = on_publish
    c.connect("127.0.0.1", port)
    c.loop_start()
    t0 = time.perf_counter()
    for r in records:
        slots.acquire()
        c.publish("bench/bare/punches", r, qos=1)
    done.wait(600)
    dt = time.perf_counter() - t0
    c.disconnect()
    c.loop_stop()
    return n / dt


def gateway_drain(port: int, n: int, window: int, batch: int, rate: float,
                  max_bytes: int = 131072) -> tuple[float, int]:
    """The gateway's publisher draining a pre-filled store; return (punches/s, messages)."""
    with tempfile.TemporaryDirectory() as d:
        store = Store(Path(d) / "g.db")
        it = punches(n)
        while chunk := [p for _, p in zip(range(10000), it, strict=False)]:
            store.add(chunk)
        cfg = MqttSection(host="127.0.0.1", port=port, tls=False, max_inflight=window,
                          batch_max_punches=batch, max_publish_rate=rate, client_id="bench-gw",
                          max_message_bytes=max_bytes)
        pub = Publisher(cfg, "bench-gw", store, boot_id="bench")
        t0 = time.perf_counter()
        pub.start()
        while store.figures()["pending"]:
            time.sleep(0.02)
        store.flush_marks(force=True)  # issue 18: acked marks may wait; count writing them
        dt = time.perf_counter() - t0
        msgs = pub.state.published
        pub.stop()
        store.close()
        return n / dt, msgs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--window", type=int, default=20)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--rate", type=float, default=1e6,
                    help="max_publish_rate for the gateway (default: uncapped)")
    ap.add_argument("--rtt-ms", type=float, default=0.0)
    ap.add_argument("--aws", action="store_true",
                    help="AWS IoT's limits: 100 publishes/s, 128 KB (see the docstring)")
    args = ap.parse_args(argv)
    if args.aws:
        return aws(args)
    with broker(max_inflight=max(args.window, 20)) as b:
        port = b.port
        proxy = None
        if args.rtt_ms:
            proxy = TcpProxy("127.0.0.1", b.port)
            proxy.set_latency(args.rtt_ms / 2000)
            port = proxy.port
        try:
            n_base = args.n if not args.rtt_ms else min(args.n, 5000)
            base = bare_paho(port, n_base, args.window)
            ours, msgs = gateway_drain(port, args.n, args.window, args.batch, args.rate)
        finally:
            if proxy is not None:
                proxy.stop()
    print(f"drain benchmark — {machine()}")
    print(f"window {args.window}, batch {args.batch}, RTT {args.rtt_ms:g} ms, N {args.n:,}\n")
    print(table(["path", "punches", "messages", "punches/s"], [
        ["bare paho, 1 punch/QoS1 message", n_base, n_base, base],
        ["gateway (SQLite → batches)", args.n, msgs, ours],
    ]))
    print(f"\nratio gateway / bare paho: {ours / base:.1f}x; "
          f"{args.n:,} punches drained in {args.n / ours:.2f} s")
    return 0


def aws(args: argparse.Namespace) -> int:
    from gateway.uplink import batching

    rows = []
    with broker(max_inflight=max(args.window, 20)) as b:
        saved = batching.BACKLOG_S
        batching.BACKLOG_S = float("inf")  # the baseline: batch_max_punches per message
        try:
            base, base_msgs = gateway_drain(b.port, args.n, args.window, args.batch, 100.0)
        finally:
            batching.BACKLOG_S = saved
        ours, msgs = gateway_drain(b.port, args.n, args.window, args.batch, 100.0)
    rows = [[f"messages of batch_max_punches = {args.batch}", args.n, base_msgs, base,
             args.n / base],
            ["messages filled to 128 KB (issue 18)", args.n, msgs, ours, args.n / ours]]
    print(f"backlog under AWS IoT's limits (100 publishes/s, 128 KB) — {machine()}\n")
    print(table(["gateway drain", "punches", "messages", "punches/s", "seconds"], rows))
    print(f"\nratio: {ours / base:.1f}x faster; {args.n:,} punches in {args.n / ours:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
