"""A ZKTeco "standalone SDK" terminal simulator (product code: demo, tests, bench checks).

It speaks the real 4370 protocol over TCP and/or UDP, well enough that unmodified pyzk
accepts it (connect/auth, free sizes, buffered and direct downloads, users, time, options,
live EF_ATTLOG events), and it commits faults on demand (``inject``; see ``sim.faults``).
When its log is full it either refuses new punches (``full_policy="refuse"``, the default,
what most terminals do) or deletes the oldest ``cyclic_delete`` records first
(``"cyclic"``, the "Cyclic Delete ATT Data" setting) — notes §5.1.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import struct
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from drivers.zk_terminal import codec as c
from drivers.zk_terminal.records import encode_event, encode_record, encode_user
from drivers.zk_terminal.sim.faults import FAULTS, FaultPlan
from drivers.zk_terminal.sim.protocol import handle
from drivers.zk_terminal.sim.server import Session, SimServer

log = structlog.get_logger(__name__)
_EVENT_SIZE = {8: 10, 16: 12, 40: 32, 49: 32}


@dataclass
class SimUser:
    uid: int
    user_id: str
    name: str
    privilege: int = 0
    card: int = 0


class ZkSimulator:
    """One simulated terminal. ``start()`` it, read ``.port``, punch, ``stop()`` it."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        transport: str = "tcp",
        *,
        serial: str = "SIM0000000001",
        record_size: int = 40,
        comm_key: int = 0,
        capacity: int = 100_000,
        full_policy: str = "refuse",
        cyclic_delete: int = 100,
        firmware: str = "Ver 6.60 Apr 26 2016",
        platform: str = "ZMM220_TFT",
        device_name: str = "SIM-ZK",
        tz: ZoneInfo | None = None,
        clock_offset_s: float = 0.0,
        download_mode: str = "auto",
        event_size: int | None = None,
    ) -> None:
        if record_size not in (8, 16, 40, 49):
            raise ValueError("record_size must be 8, 16, 40 or 49")
        if transport not in ("tcp", "udp", "both"):
            raise ValueError("transport must be tcp, udp or both")
        self.serial, self.firmware, self.platform = serial, firmware, platform
        self.device_name = device_name
        self.record_size = record_size
        self.comm_key = comm_key
        self.capacity = capacity
        self.full_policy = full_policy
        self.cyclic_delete = cyclic_delete
        self.tz = tz
        self.download_mode = download_mode
        self.event_size = event_size or _EVENT_SIZE[record_size]
        self.faults = FaultPlan()
        self.enabled = True
        self.refused = 0
        self.commands: deque[int] = deque(maxlen=4096)
        self._offset = timedelta(seconds=clock_offset_s)
        self._log = bytearray()
        self._users: dict[str, SimUser] = {}
        self._lock = threading.RLock()
        self._server = SimServer(self, host, port, transport)
        self.host = host

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> ZkSimulator:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> ZkSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def sessions(self) -> int:
        return len(self._server.sessions)

    @property
    def connections(self) -> int:
        return self._server.connections

    # -- clock ---------------------------------------------------------------------------
    def now(self) -> datetime:
        """The terminal's own naive local time."""
        return (datetime.now(self.tz).replace(tzinfo=None) + self._offset).replace(microsecond=0)

    def set_clock(self, when: datetime) -> None:
        self._offset = when - datetime.now(self.tz).replace(tzinfo=None)

    def shift_clock(self, seconds: float) -> None:
        self._offset += timedelta(seconds=seconds)

    # -- users and punches ---------------------------------------------------------------
    def add_user(self, user_id: str, name: str = "", privilege: int = 0, card: int = 0) -> SimUser:
        with self._lock:
            u = self._users.get(user_id)
            if u is None:
                u = SimUser(
                    len(self._users) + 1, user_id, name or f"User {user_id}", privilege, card
                )
                self._users[user_id] = u
            return u

    @property
    def records(self) -> int:
        return len(self._log) // self.record_size

    def punch(
        self, user_id: str, time: datetime | None = None, state: int = 0, verify: int = 1
    ) -> bool:
        """A user punches now (or at ``time``); False if the terminal refused it."""
        when = (time or self.now()).replace(microsecond=0)
        with self._lock:
            if not self.enabled:
                self.refused += 1
                return False
            u = self.add_user(user_id)
            if self.records >= self.capacity:
                if self.full_policy != "cyclic":
                    self.refused += 1
                    return False
                del self._log[: self.cyclic_delete * self.record_size]
            self._log += encode_record(
                self.record_size, user_id, c.encode_time(when), state, verify, u.uid
            )
            payload = encode_event(self.event_size, user_id, when, state, verify, u.uid)
        self._server.broadcast_event(payload)
        return True

    def bulk_load(
        self,
        n: int,
        start: datetime | None = None,
        users: int = 50,
        step_s: int = 37,
        first_user: int = 1001,
    ) -> None:
        """Append ``n`` records fast (no live events), spread over ``users`` users."""
        t0 = start or (self.now() - timedelta(seconds=step_s * n))
        rs = self.record_size
        ids = [str(first_user + i) for i in range(users)]
        uids = [self.add_user(i).uid for i in ids]
        base, off = c.encode_time(t0), 0
        parts = []
        for i in range(n):
            when = t0 + timedelta(seconds=step_s * i) if i % 512 == 0 else None
            if when is not None:
                base, off = c.encode_time(when), i
            k = i % users
            parts.append(encode_record(rs, ids[k], base + (i - off) * step_s, i % 2, 1, uids[k]))
        with self._lock:
            self._log += b"".join(parts)

    def record_bytes(self, index: int) -> bytes:
        rs = self.record_size
        return bytes(self._log[index * rs : (index + 1) * rs])

    def write_record(self, index: int, raw: bytes) -> None:
        rs = self.record_size
        with self._lock:
            self._log[index * rs : (index + 1) * rs] = raw.ljust(rs, b"\0")[:rs]

    # -- faults --------------------------------------------------------------------------
    def inject(self, name: str, **kw: Any) -> None:
        """Commit a fault (names and parameters: ``faults.FAULTS``)."""
        log.info("zk_sim_inject", fault=name, **kw)
        idx = int(kw.get("index", 0))
        if name == "corrupt_record":
            self.write_record(idx, b"\xff" * self.record_size)
        elif name in ("invalid_date", "clock_reset_record"):
            raw = bytearray(self.record_bytes(idx))
            y, mo, d = kw.get("date", (2025, 2, 30) if name == "invalid_date" else (2000, 1, 1))
            t = c.encode_time_fields(y, mo, d, 8, 0, 0)
            off = {8: 4, 16: 4}.get(self.record_size, 27)
            raw[off : off + 4] = struct.pack("<I", t)
            self.write_record(idx, bytes(raw))
        elif name == "reboot":
            self.reboot(float(kw.get("downtime_s", 0.0)), bool(kw.get("clock_reset", False)))
        elif name == "kick_live":
            self._server.kick(live_only=True)
        elif name == "log_full":
            self.capacity = int(kw.get("capacity", self.records))
            self.full_policy = str(kw.get("policy", "refuse"))
            self.cyclic_delete = int(kw.get("delete", self.cyclic_delete))
        else:
            self.faults.arm(name, **kw)

    def clear_faults(self) -> None:
        self.faults.clear()

    def reboot(self, downtime_s: float = 0.0, clock_reset: bool = False) -> None:
        """All sessions gone, sockets closed; listening again after ``downtime_s``."""
        self._server.stop()
        self.enabled = True
        if clock_reset:
            self.set_clock(datetime(2000, 1, 1))
        if downtime_s > 0:
            threading.Event().wait(downtime_s)
        self._server.start()

    # -- datasets ------------------------------------------------------------------------
    def clear_log(self) -> None:
        """CMD_CLEAR_ATTLOG: the terminal's log is emptied."""
        with self._lock:
            self._log.clear()

    def attlog_dataset(self) -> bytes:
        with self._lock:
            body = bytes(self._log)
        missing = self.faults.take_short()
        if missing:
            body = body[: max(0, len(body) - missing * self.record_size)]
        return struct.pack("<I", len(body)) + body

    def users_dataset(self) -> bytes:
        size = 28 if self.record_size in (8, 16) else 72
        with self._lock:
            body = b"".join(
                encode_user(size, u.uid, u.user_id, u.name, u.privilege, u.card)
                for u in self._users.values()
            )
        return struct.pack("<I", len(body)) + body

    def free_sizes(self) -> c.FreeSizes:
        recs = 0 if self.faults.take_zero() else self.records
        return c.FreeSizes(
            users=len(self._users),
            records=recs,
            fingers_cap=3000,
            users_cap=10000,
            rec_cap=self.capacity,
            fingers_av=3000,
            users_av=10000 - len(self._users),
            rec_av=max(self.capacity - self.records, 0),
            faces_cap=0,
        )

    _OPTIONS = {
        "~ZKFPVersion": "10",
        "ZKFaceVersion": "0",
        "~ExtendFmt": "1",
        "~UserExtFmt": "1",
        "FaceFunOn": "0",
        "CompatOldFirmware": "0",
        "MAC": "00:17:61:c8:00:01",
        "IPAddress": "127.0.0.1",
        "NetMask": "255.0.0.0",
        "GATEIPAddress": "0.0.0.0",  # nosec B104 # noqa: S104 - a reported value
        "~OS": "1",
    }

    def option(self, key: str) -> str | None:
        fixed = {
            "~SerialNumber": self.serial,
            "~Platform": self.platform,
            "~DeviceName": self.device_name,
        }
        return fixed.get(key, self._OPTIONS.get(key))

    # -- protocol ------------------------------------------------------------------------
    def handle(self, s: Session, f: c.Frame) -> None:
        """Answer one command frame from session ``s`` (``protocol.handle``)."""
        handle(self, s, f)


@contextlib.contextmanager
def demo_simulator(rate: float = 0.5, tz: str = "Asia/Shanghai") -> Iterator[ZkSimulator]:
    """``gatewayctl demo``'s terminal: a started simulator with some history, punching at
    ``rate``/s on a named thread. ``tz`` matches the demo config's ``[gateway] timezone``."""
    sim = ZkSimulator(port=0, serial="DEMO0000000001", tz=ZoneInfo(tz))
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
        description=__doc__,
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
