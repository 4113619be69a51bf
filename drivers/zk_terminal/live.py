"""The live-event link: a second session to the terminal, spoken with our own codec.

Why not pyzk's ``live_capture()`` (notes §1.8, fananimi/pyzk#42/#86/#114): it downloads all
users first, ACKs an event before parsing it, crashes on two coalesced events or an unknown
payload length, and has no keepalive, so a rebooted terminal just yields ``None`` forever.
This link decodes a byte stream into frames (coalesced and split frames are fine), ACKs an
event only after decoding it, and answers ``get_time`` on the same socket as a keepalive that
also measures the clock: a silent terminal is noticed within ``timeout`` seconds.

Why a second session instead of pyzk's socket: pyzk's next command would read an event that
arrives in between as its reply and desynchronise. Two sessions keep the command path (pyzk)
and the event path (this) independent; the gateway is the terminal's only other client.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import time
from datetime import datetime

from drivers.zk_terminal import codec as c
from drivers.zk_terminal.records import LiveEvent, parse_event


class LiveError(Exception):
    """The live link is broken (closed, silent, refused)."""


class LiveLink:
    """Blocking calls with timeouts; owned by the driver's (runner's) thread."""

    def __init__(self, host: str, port: int, transport: str, comm_key: int, timeout: float) -> None:
        self.host, self.port, self.transport = host, port, transport
        self._key = comm_key
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._dec = c.FrameDecoder()
        self._session = 0
        self._reply = 0
        self._events: list[LiveEvent] = []
        self._replies: dict[int, c.Frame] = {}
        self.problems: list[str] = []
        self.received = 0

    @property
    def tcp(self) -> bool:
        return self.transport == "tcp"

    def open(self) -> None:
        try:
            if self.tcp:
                s = socket.create_connection((self.host, self.port), timeout=self.timeout)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            else:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.connect((self.host, self.port))
        except OSError as err:
            raise LiveError(f"live link: cannot connect: {err}") from err
        self._sock = s
        reply = self.call(c.CMD_CONNECT)
        self._session = reply.session
        if reply.cmd == c.CMD_ACK_UNAUTH:
            reply = self.call(c.CMD_AUTH, c.make_commkey(self._key, self._session))
        if reply.cmd != c.CMD_ACK_OK:
            raise LiveError(f"live link: connect refused (reply {reply.cmd})")
        reply = self.call(c.CMD_REG_EVENT, struct.pack("<I", c.EF_ATTLOG))
        if reply.cmd != c.CMD_ACK_OK:
            raise LiveError(f"live link: event registration refused (reply {reply.cmd})")

    def close(self) -> None:
        s, self._sock = self._sock, None
        if s is None:
            return
        with contextlib.suppress(OSError):
            s.settimeout(0.5)
            s.send(self._encode(c.CMD_EXIT, self._next_reply(), b""))
        with contextlib.suppress(OSError):
            s.close()

    # -- wire ----------------------------------------------------------------------------
    def _encode(self, cmd: int, reply: int, payload: bytes) -> bytes:
        enc = c.encode_tcp if self.tcp else c.encode_udp
        return enc(cmd, self._session, reply, payload)

    def _next_reply(self) -> int:
        self._reply = (self._reply + 1) % c.USHRT_MAX
        return self._reply

    def _send(self, data: bytes) -> None:
        if self._sock is None:
            raise LiveError("live link is closed")
        try:
            self._sock.settimeout(self.timeout)
            self._sock.sendall(data)
        except OSError as err:
            raise LiveError(f"live link: send failed: {err}") from err

    def _pump(self, wait: float) -> bool:
        """Read what arrives within ``wait`` s; handle events and replies. True if any."""
        s = self._sock
        if s is None:
            raise LiveError("live link is closed")
        try:
            ready, _, _ = select.select([s], [], [], max(wait, 0.0))
            if not ready:
                return False
            data = s.recv(65536)
        except OSError as err:
            raise LiveError(f"live link: receive failed: {err}") from err
        if not data:
            raise LiveError("live link: the terminal closed the connection")
        frames = self._dec.feed(data) if self.tcp else [f for f in [c.decode_packet(data)] if f]
        for f in frames:
            if f.cmd == c.CMD_REG_EVENT:
                events, problems = parse_event(f.payload)
                self._events.extend(events)
                self.problems.extend(problems)
                self.received += len(events)
                # ACK after decoding (pyzk ACKs first: an event it then fails to parse is
                # lost to the live path). Reply number 0, as pyzk's __ack_ok sends it.
                self._send(self._encode(c.CMD_ACK_OK, 0, b""))
            else:
                self._replies[f.reply] = f
        return True

    def call(self, cmd: int, payload: bytes = b"") -> c.Frame:
        """Send a command and wait for its reply (events arriving meanwhile are kept)."""
        reply_no = self._next_reply() if cmd != c.CMD_CONNECT else 0
        if cmd == c.CMD_CONNECT:
            self._reply = 0
        self._replies.clear()
        self._send(self._encode(cmd, reply_no, payload))
        deadline = time.monotonic() + self.timeout
        while reply_no not in self._replies:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LiveError(
                    f"live link: no answer to command {cmd} within "
                    f"{self.timeout:g} s (terminal hung or gone)"
                )
            self._pump(left)
        return self._replies.pop(reply_no)

    # -- API -----------------------------------------------------------------------------
    def poll(self, wait: float) -> list[LiveEvent]:
        """Events that arrived, waiting up to ``wait`` s for the first one."""
        deadline = time.monotonic() + wait
        while not self._events:
            left = deadline - time.monotonic()
            if left <= 0 or not self._pump(left):
                break
        while self._pump(0):  # drain whatever is already buffered, without waiting
            pass
        out, self._events = self._events, []
        return out

    def get_time(self) -> datetime | None:
        """The terminal's clock; doubles as the keepalive."""
        f = self.call(c.CMD_GET_TIME)
        if f.cmd != c.CMD_ACK_OK or len(f.payload) < 4:
            raise LiveError(f"live link: bad reply {f.cmd} to get_time")
        return c.decode_time(struct.unpack_from("<I", f.payload)[0])
