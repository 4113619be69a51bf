"""The simulator's command line (``gatewayctl sim zk``) and the demo's terminal."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import threading
from collections.abc import Iterator, Sequence
from types import FrameType
from zoneinfo import ZoneInfo

from drivers.zk_terminal.sim.device import ZkSimulator
from drivers.zk_terminal.sim.device import __doc__ as device_doc
from drivers.zk_terminal.sim.faults import FAULTS


@contextlib.contextmanager
def demo_simulator(rate: float = 0.5, tz: str = "Asia/Shanghai") -> Iterator[ZkSimulator]:
    """``gatewayctl demo``'s terminal: a started simulator with some history, punching at
    ``rate``/s on a named thread. ``tz`` matches the demo config's ``[gateway] timezone``."""
    sim = ZkSimulator(port=0, serial="DEMO0000000001", tz=ZoneInfo(tz), frame_gap_s=0.005)
    sim.bulk_load(500, users=20)
    stop = threading.Event()

    def punches() -> None:
        n = 0
        while not stop.wait(1.0 / rate if rate > 0 else 3600):
            sim.punch(str(1001 + n % 20), state=n % 2)
            n += 1

    sim.start()
    th = threading.Thread(target=punches, name="zk-sim-demo-punches", daemon=True)
    th.start()
    try:
        yield sim
    finally:
        stop.set()
        th.join(timeout=5)
        sim.stop()


# -- CLI ---------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """``gatewayctl sim zk``: run a simulated terminal until SIGINT/SIGTERM."""
    ap = argparse.ArgumentParser(
        prog="gatewayctl sim zk",
        description=device_doc,
        epilog="faults (Python API ZkSimulator.inject): "
        + "; ".join(f"{k}: {v}" for k, v in FAULTS.items()),
    )
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=4370, help="0 picks a free port")
    ap.add_argument("--transport", choices=("tcp", "udp", "both"), default="tcp")
    ap.add_argument("--serial", default="SIM0000000001")
    ap.add_argument("--records", type=int, default=0, help="records preloaded in the log")
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--rate", type=float, default=0.0, help="punches per second (0: none)")
    ap.add_argument("--record-size", type=int, choices=(8, 16, 40, 49), default=40)
    ap.add_argument("--comm-key", type=int, default=0)
    ap.add_argument("--capacity", type=int, default=100_000)
    ap.add_argument("--full-policy", choices=("refuse", "cyclic"), default="refuse")
    ap.add_argument("--clock-offset", type=float, default=0.0, help="seconds ahead of the host")
    ap.add_argument("--timezone", default=None, help="IANA zone of the terminal's clock")
    ap.add_argument(
        "--frame-gap-ms",
        type=float,
        default=5.0,
        help="pause between the 1008-byte frames of a download, like a terminal's slow "
        "CPU and link (clients such as unmodified pyzk need it; 0: as fast as possible)",
    )
    ap.add_argument(
        "--bulk-framing",
        choices=("device", "single"),
        default="device",
        help="device: PREPARE_DATA, 1008-byte DATA frames, ACK_OK, as a terminal; single: "
        "one DATA frame per chunk in one write (kinder than any terminal; benchmarks only)",
    )
    args = ap.parse_args(list(argv) if argv is not None else None)
    sim = ZkSimulator(
        args.host,
        args.port,
        args.transport,
        serial=args.serial,
        record_size=args.record_size,
        comm_key=args.comm_key,
        capacity=args.capacity,
        full_policy=args.full_policy,
        tz=ZoneInfo(args.timezone) if args.timezone else None,
        clock_offset_s=args.clock_offset,
        frame_gap_s=args.frame_gap_ms / 1000.0,
        bulk_framing=args.bulk_framing,
    )
    if args.records:
        sim.bulk_load(args.records, users=max(args.users, 1))
    stop = threading.Event()

    def _stop(_sig: int, _frm: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stop)
    try:
        sim.start()
    except OSError as err:
        print(f"cannot listen on {args.host}:{args.port}: {err}", flush=True)
        return 2
    print(
        f"zk simulator {args.serial} listening on {args.transport}://{args.host}:{sim.port} "
        f"({sim.records} records); port {sim.port}",
        flush=True,
    )
    n = 0
    rng = int.from_bytes(os.urandom(2), "little")
    try:
        while not stop.wait(1.0 / args.rate if args.rate > 0 else 3600):
            if args.rate > 0:
                user = str(1001 + (rng + n) % max(args.users, 1))
                sim.punch(user, state=n % 2, verify=1)
                n += 1
    finally:
        sim.stop()
    print(f"stopped after {n} punches", flush=True)
    return 0
