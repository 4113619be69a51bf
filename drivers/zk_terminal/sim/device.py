"""A ZKTeco "standalone SDK" terminal simulator (product code: demo, tests, bench checks).

It speaks the real 4370 protocol over TCP and/or UDP, well enough that unmodified pyzk
accepts it (connect/auth, free sizes, buffered and direct downloads, users, time, options,
live EF_ATTLOG events), and it commits faults on demand (``inject``; see ``sim.faults``).
When its log is full it either refuses new punches (``full_policy="refuse"``, the default,
what most terminals do) or deletes the oldest ``cyclic_delete`` records first
(``"cyclic"``, the "Cyclic Delete ATT Data" setting) — notes §5.1.
"""

from __future__ import annotations

import struct
import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from drivers.zk_terminal import codec as c
from drivers.zk_terminal.records import (
    BW_VERIFY,
    MARKER,
    encode_event,
    encode_record,
    encode_user,
)
from drivers.zk_terminal.sim.faults import FaultPlan
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
        frame_gap_s: float = 0.0,
        bulk_framing: str = "device",
        log_marker: bool = False,
        first_uid: int = 1,
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
        #: Pause between the frames of a bulk answer (a terminal's slow CPU and link).
        self.frame_gap_s = frame_gap_s
        #: "device" (real framing, ``sim.bulk``) or "single" (one DATA frame per chunk).
        self.bulk_framing = bulk_framing
        #: Write the 9-byte ff'255' marker some firmware put before the log (pyzk2 0.2).
        self.log_marker = log_marker
        #: Slots are handed out from here: a user's slot (uid) is not their PIN.
        self.first_uid = first_uid
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
    def add_user(
        self,
        user_id: str,
        name: str = "",
        privilege: int = 0,
        card: int = 0,
        uid: int | None = None,
    ) -> SimUser:
        """Enroll a user (PIN ``user_id``) in the next free slot, or in slot ``uid``."""
        with self._lock:
            u = self._users.get(user_id)
            if u is None:
                taken = {x.uid for x in self._users.values()}
                slot = uid if uid is not None else self.first_uid
                while uid is None and slot in taken:
                    slot += 1
                u = SimUser(slot, user_id, name or f"User {user_id}", privilege, card)
                self._users[user_id] = u
            return u

    def delete_user(self, user_id: str) -> None:
        """Remove a user from the table (their log records keep the slot number)."""
        with self._lock:
            self._users.pop(user_id, None)

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
            if self.record_size == 8:  # BW firmware knows 3 verify methods (records.py)
                verify = BW_VERIFY.get(verify, 1)
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
        if self.log_marker:
            body = MARKER + body
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
        "~OEMVendor": "ZKTeco Inc.",
        "~ProductTime": "2016-04-26 10:20:30",
    }

    def option(self, key: str) -> str | None:
        bw = self.record_size == 8
        fixed = {
            "~SerialNumber": self.serial,
            "~Platform": self.platform,
            "~DeviceName": self.device_name,
            # Older BW firmware: 5-digit PINs and no SSR (TFT "self-service recorder") API;
            # the 2006 manual §3 note on PIN widths.
            "~PIN2Width": "5" if bw else "9",
            "~SSR": "0" if bw else "1",
        }
        return fixed.get(key, self._OPTIONS.get(key))

    # -- protocol ------------------------------------------------------------------------
    def handle(self, s: Session, f: c.Frame) -> None:
        """Answer one command frame from session ``s`` (``protocol.handle``)."""
        handle(self, s, f)
