"""Sans-IO codec for the ZKTeco "standalone SDK" protocol (TCP/UDP port 4370).

Bytes in, frames out: nothing here touches a socket, and nothing here raises on any input
(decoders report problems instead). Wire facts are from pyzk master 5063798 ``zk/base.py``
and adrobinoga/zk-protocol, summarised in /work/shared/notes/pyzk-and-peers.md §1.3-1.6.

TCP frame: ``50 50 82 7D`` + u32 LE length of (header + payload) + 8-byte header
(``cmd, checksum, session, reply``, u16 LE each) + payload. UDP: the same without the first
8 bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import datetime

# Command codes (pyzk zk/const.py).
CMD_OPTIONS_RRQ = 11
CMD_ATTLOG_RRQ = 13
CMD_CLEAR_ATTLOG = 15
CMD_USERTEMP_RRQ = 9
CMD_GET_FREE_SIZES = 50
CMD_STARTVERIFY = 60
CMD_CANCELCAPTURE = 62
CMD_GET_TIME = 201
CMD_SET_TIME = 202
CMD_REG_EVENT = 500
CMD_CONNECT = 1000
CMD_EXIT = 1001
CMD_ENABLEDEVICE = 1002
CMD_DISABLEDEVICE = 1003
CMD_RESTART = 1004
CMD_REFRESHDATA = 1013
CMD_GET_VERSION = 1100
CMD_AUTH = 1102
CMD_PREPARE_DATA = 1500
CMD_DATA = 1501
CMD_FREE_DATA = 1502
CMD_PREPARE_BUFFER = 1503
CMD_READ_BUFFER = 1504
CMD_ACK_OK = 2000
CMD_ACK_ERROR = 2001
CMD_ACK_UNAUTH = 2005
CMD_ACK_UNKNOWN = 0xFFFF
FCT_USER = 5
EF_ATTLOG = 1
USHRT_MAX = 65535

MAGIC = b"\x50\x50\x82\x7d"
HEADER = struct.Struct("<4H")
TCP_TOP = struct.Struct("<4sI")
#: Refuse absurd TCP length fields (a corrupt prefix must not make the decoder wait for GBs).
MAX_FRAME = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded packet. ``checksum_ok`` is informative: pyzk never checks it either."""

    cmd: int
    checksum: int
    session: int
    reply: int
    payload: bytes
    checksum_ok: bool = True


def checksum(data: bytes) -> int:
    """Standard 16-bit ones'-complement checksum of LE u16 words (odd byte as a low byte).

    The header must carry 0 in the checksum field. Vectors: notes §1.3 (adrobinoga
    ``protocol.md``; every complete frame of pyzk ``test.py``).
    """
    n = len(data)
    total = sum(struct.unpack_from(f"<{n // 2}H", data)) if n >= 2 else 0
    if n % 2:
        total += data[-1]
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def encode_packet(cmd: int, session: int, reply: int, payload: bytes = b"") -> bytes:
    """The UDP packet (= TCP frame without its 8-byte prefix)."""
    cmd, session, reply = cmd & 0xFFFF, session & 0xFFFF, reply & 0xFFFF
    chk = checksum(HEADER.pack(cmd, 0, session, reply) + payload)
    return HEADER.pack(cmd, chk, session, reply) + payload


def encode_tcp(cmd: int, session: int, reply: int, payload: bytes = b"") -> bytes:
    """A complete TCP frame."""
    packet = encode_packet(cmd, session, reply, payload)
    return TCP_TOP.pack(MAGIC, len(packet)) + packet


def encode_udp(cmd: int, session: int, reply: int, payload: bytes = b"") -> bytes:
    return encode_packet(cmd, session, reply, payload)


def decode_packet(packet: bytes) -> Frame | None:
    """Decode one UDP datagram (or the part of a TCP frame after its prefix)."""
    if len(packet) < HEADER.size:
        return None
    cmd, chk, session, reply = HEADER.unpack_from(packet)
    payload = bytes(packet[HEADER.size :])
    ok = checksum(HEADER.pack(cmd, 0, session, reply) + payload) == chk
    return Frame(cmd, chk, session, reply, payload, ok)


class FrameDecoder:
    """Incremental TCP frame decoder: keeps partial frames, resyncs on garbage."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._buf = bytearray()
        self._max = max_frame
        #: Bytes thrown away while hunting for the magic (for diagnostics).
        self.garbage = 0

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        out: list[Frame] = []
        while True:
            frame = self._next()
            if frame is None:
                return out
            out.append(frame)

    @property
    def pending(self) -> int:
        """Bytes held back waiting for the rest of a frame."""
        return len(self._buf)

    def _next(self) -> Frame | None:
        buf = self._buf
        while True:
            if len(buf) < 4:
                if buf and not MAGIC.startswith(bytes(buf)):
                    self._skip(1)
                    continue
                return None
            if buf[:4] != MAGIC:
                idx = buf.find(MAGIC, 1)
                if idx < 0:
                    # Keep a tail that could be the start of the next magic.
                    keep = next((k for k in (3, 2, 1) if MAGIC.startswith(bytes(buf[-k:]))), 0)
                    self._skip(len(buf) - keep)
                    return None
                self._skip(idx)
                continue
            if len(buf) < 8:
                return None
            (length,) = struct.unpack_from("<I", buf, 4)
            if length < HEADER.size or length > self._max:
                self._skip(1)  # a false magic or a corrupt length: hunt for the next one
                continue
            if len(buf) < 8 + length:
                return None
            packet = bytes(buf[8 : 8 + length])
            del buf[: 8 + length]
            return decode_packet(packet)

    def _skip(self, n: int) -> None:
        del self._buf[:n]
        self.garbage += n


def frame_extent(buf: bytes | bytearray) -> int | None:
    """Length of the complete TCP frame at the start of ``buf``; None if not (yet) one."""
    if len(buf) < 8 or bytes(buf[:4]) != MAGIC:
        return None
    length: int = struct.unpack_from("<I", buf, 4)[0]
    if length < HEADER.size or length > MAX_FRAME:
        return None
    return 8 + length


# -- time -------------------------------------------------------------------------------
def encode_time(t: datetime) -> int:
    """ZK u32 time (pyzk ``__encode_time``; every month has 31 days on the wire)."""
    return (
        ((t.year % 100) * 12 * 31 + (t.month - 1) * 31 + t.day - 1) * 86400
        + (t.hour * 60 + t.minute) * 60
        + t.second
    )


def encode_time_fields(  # noqa: PLR0917 - the six fields of a date, in order
    year: int, month: int, day: int, hh: int = 0, mm: int = 0, ss: int = 0
) -> int:
    """Like ``encode_time`` but for dates ``datetime`` refuses (a corrupt-clock fixture)."""
    return (
        ((year % 100) * 12 * 31 + (month - 1) * 31 + day - 1) * 86400 + (hh * 60 + mm) * 60 + ss
    ) & 0xFFFFFFFF


def decode_time_fields(t: int) -> tuple[int, int, int, int, int, int]:
    """u32 → (year, month, day, hour, minute, second), not validated."""
    t, second = divmod(t, 60)
    t, minute = divmod(t, 60)
    t, hour = divmod(t, 24)
    t, day0 = divmod(t, 31)
    year_off, month0 = divmod(t, 12)
    return year_off + 2000, month0 + 1, day0 + 1, hour, minute, second


def decode_time(t: int) -> datetime | None:
    """u32 → naive datetime, or None when the fields are not a real date (e.g. Feb 30)."""
    y, mo, d, h, mi, s = decode_time_fields(t)
    return _mkdate(y, mo, d, h, mi, s)


def encode_timehex(t: datetime) -> bytes:
    """6-byte live-event time: YY-2000, MM, DD, hh, mm, ss."""
    return bytes(((t.year - 2000) & 0xFF, t.month, t.day, t.hour, t.minute, t.second))


def decode_timehex(b: bytes) -> datetime | None:
    if len(b) < 6:
        return None
    return _mkdate(b[0] + 2000, b[1], b[2], b[3], b[4], b[5])


def _mkdate(  # noqa: PLR0917 - the six fields of a date, in order
    y: int, mo: int, d: int, h: int, mi: int, s: int
) -> datetime | None:
    if not 2000 <= y <= 2099:
        return None
    try:
        return datetime(y, mo, d, h, mi, s)
    except ValueError:
        return None


# -- free sizes -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FreeSizes:
    """CMD_GET_FREE_SIZES reply (pyzk ``read_sizes``; adrobinoga ``terminal.md``)."""

    users: int = 0
    fingers: int = 0
    records: int = 0
    oplogs: int = 0
    cards: int = 0
    fingers_cap: int = 0
    users_cap: int = 0
    rec_cap: int = 0
    fingers_av: int = 0
    users_av: int = 0
    rec_av: int = 0
    faces: int = 0
    faces_cap: int = 0

    def encode(self) -> bytes:
        f = [0] * 23
        f[4], f[6], f[8], f[10], f[12] = (
            self.users,
            self.fingers,
            self.records,
            self.oplogs,
            self.cards,
        )
        f[14], f[15], f[16] = self.fingers_cap, self.users_cap, self.rec_cap
        f[17], f[18], f[19] = self.fingers_av, self.users_av, self.rec_av
        f[20], f[22] = self.faces, self.faces_cap
        return struct.pack("<23i", *f)


def parse_free_sizes(payload: bytes) -> FreeSizes | None:
    """None when the payload is too short (pyzk silently leaves zeros instead)."""
    if len(payload) < 80:
        return None
    f = struct.unpack_from("<20i", payload)
    faces = faces_cap = 0
    if len(payload) >= 92:
        faces, _, faces_cap = struct.unpack_from("<3i", payload, 80)
    return FreeSizes(
        f[4], f[6], f[8], f[10], f[12], f[14], f[15], f[16], f[17], f[18], f[19], faces, faces_cap
    )


# -- comm key ---------------------------------------------------------------------------
def make_commkey(key: int, session_id: int, ticks: int = 50) -> bytes:
    """CMD_AUTH payload (pyzk ``make_commkey``, "copied from commpro.c - MakeKey")."""
    k = 0
    for i in range(32):
        k = (k << 1) | ((key >> i) & 1)
    k = (k + session_id) & 0xFFFFFFFF
    b = struct.pack("<I", k)
    b = bytes((b[0] ^ ord("Z"), b[1] ^ ord("K"), b[2] ^ ord("S"), b[3] ^ ord("O")))
    lo, hi = struct.unpack("<HH", b)
    b = struct.pack("<HH", hi, lo)
    t = ticks & 0xFF
    return bytes((b[0] ^ t, b[1] ^ t, t, b[3] ^ t))


def option_value(payload: bytes) -> str:
    """``key=value\\0`` → value (pyzk splits on the first ``=`` and the first NUL)."""
    return payload.split(b"=", 1)[-1].split(b"\x00")[0].decode("utf-8", "replace")
