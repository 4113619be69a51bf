"""Command dispatch of the ZK simulator: one reply per command, as a terminal answers.

Command set and reply shapes: notes §1.3-1.9 (pyzk master ``zk/base.py``; adrobinoga
``protocol.md``, ``ex_data.md``). Unknown commands get CMD_ACK_UNKNOWN.
"""

from __future__ import annotations

import struct
import threading
from collections import deque
from datetime import datetime
from typing import Protocol

from drivers.zk_terminal import codec as c
from drivers.zk_terminal.sim.bulk import send_chunk
from drivers.zk_terminal.sim.faults import FaultPlan
from drivers.zk_terminal.sim.server import TCP_CHUNK_MAX, Session


class Terminal(Protocol):
    """The simulated terminal's state that commands read and change (``device.ZkSimulator``)."""

    commands: deque[int]
    faults: FaultPlan
    comm_key: int
    enabled: bool
    firmware: str
    download_mode: str
    frame_gap_s: float
    bulk_framing: str

    def free_sizes(self) -> c.FreeSizes: ...
    def option(self, key: str) -> str | None: ...
    def now(self) -> datetime: ...
    def set_clock(self, when: datetime) -> None: ...
    def attlog_dataset(self) -> bytes: ...
    def users_dataset(self) -> bytes: ...
    def clear_log(self) -> None: ...


def handle(dev: Terminal, s: Session, f: c.Frame) -> None:
    """Answer one command frame from session ``s``."""
    dev.commands.append(f.cmd)
    if dev.faults.hang:
        return
    delay = dev.faults.take_slow()
    if delay:
        threading.Event().wait(delay)
    cmd, r, p = f.cmd, f.reply, f.payload
    ok = c.CMD_ACK_OK
    if cmd == c.CMD_ACK_OK:  # the client's ACK of a live event: no reply
        s.event_acked()
        return
    if cmd == c.CMD_CONNECT:
        s.write(ok if s.authed else c.CMD_ACK_UNAUTH, r)
        return
    if cmd == c.CMD_AUTH:
        good = len(p) == 4 and p == c.make_commkey(dev.comm_key, s.id, p[2])
        s.authed = s.authed or good
        s.write(ok if s.authed else c.CMD_ACK_UNAUTH, r)
        return
    if not s.authed:
        s.write(c.CMD_ACK_UNAUTH, r)
        return
    if cmd == c.CMD_EXIT:
        s.write(ok, r)
        s.close()
    elif cmd in (c.CMD_ENABLEDEVICE, c.CMD_DISABLEDEVICE):
        dev.enabled = cmd == c.CMD_ENABLEDEVICE
        s.write(ok, r)
    elif cmd == c.CMD_GET_FREE_SIZES:
        s.write(ok, r, dev.free_sizes().encode())
    elif cmd == c.CMD_GET_VERSION:
        s.write(ok, r, dev.firmware.encode() + b"\x00")
    elif cmd == c.CMD_OPTIONS_RRQ:
        key = p.split(b"\x00")[0].decode("ascii", "replace")
        val = dev.option(key)
        if val is None:
            s.write(c.CMD_ACK_ERROR, r)
        else:
            s.write(ok, r, f"{key}={val}".encode() + b"\x00")
    elif cmd == c.CMD_GET_TIME:
        s.write(ok, r, struct.pack("<I", c.encode_time(dev.now())))
    elif cmd == c.CMD_SET_TIME and len(p) >= 4:
        when = c.decode_time(struct.unpack_from("<I", p)[0])
        if when is None:
            s.write(c.CMD_ACK_ERROR, r)
        else:
            dev.set_clock(when)
            s.write(ok, r)
    elif cmd == c.CMD_REG_EVENT:
        s.events = struct.unpack_from("<I", p.ljust(4, b"\0"))[0]
        s.write(ok, r)
    elif cmd == c.CMD_PREPARE_BUFFER:
        _prepare_buffer(dev, s, r, p)
    elif cmd == c.CMD_ATTLOG_RRQ:
        _send_dataset(dev, s, r, dev.attlog_dataset(), direct=True)
    elif cmd == c.CMD_READ_BUFFER and len(p) >= 8 and s.buffer is not None:
        start, size = struct.unpack_from("<ii", p)
        if dev.faults.grid_only:
            start -= start % TCP_CHUNK_MAX
        send_chunk(s, r, s.buffer[start : start + size], dev.frame_gap_s, dev.bulk_framing)
    elif cmd == c.CMD_FREE_DATA:
        s.buffer = None
        s.write(ok, r)
    elif cmd == c.CMD_CLEAR_ATTLOG:
        dev.clear_log()
        s.write(ok, r)
    elif cmd in (c.CMD_REFRESHDATA, c.CMD_CANCELCAPTURE, c.CMD_STARTVERIFY):
        s.write(ok, r)
    else:
        s.write(c.CMD_ACK_UNKNOWN, r)


def _prepare_buffer(dev: Terminal, s: Session, r: int, p: bytes) -> None:
    if len(p) < 11:
        s.write(c.CMD_ACK_ERROR, r)
        return
    _, command, fct, _ext = struct.unpack_from("<bhii", p)
    if command == c.CMD_ATTLOG_RRQ:
        data = dev.attlog_dataset()
    elif command == c.CMD_USERTEMP_RRQ and fct == c.FCT_USER:
        data = dev.users_dataset()
    else:
        data = struct.pack("<I", 0)
    _send_dataset(dev, s, r, data, direct=False)


def _send_dataset(dev: Terminal, s: Session, r: int, data: bytes, *, direct: bool) -> None:
    small = len(data) <= 1016
    if (
        direct
        or (dev.download_mode == "direct" and (s.tcp or small))
        or (dev.download_mode == "auto" and small)
    ):
        drop = dev.faults.take_drop(len(data))
        if drop is not None and s.tcp:
            s.send_raw(c.encode_tcp(c.CMD_DATA, s.id, r, data)[: 16 + drop])
            s.close()
            return
        s.write(c.CMD_DATA, r, data)
        return
    s.buffer = data
    info = struct.pack("<BIII", 0, len(data), len(data), TCP_CHUNK_MAX)
    s.write(c.CMD_ACK_OK, r, info)
