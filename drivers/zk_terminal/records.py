"""Attendance-log, user and live-event layouts: a tolerant parser and the matching encoders.

Layouts (notes §1.7, §1.8; pyzk master ``get_attendance``/``live_capture``):

* 8 bytes  ``<HBB4s``  uid (the terminal's internal user *slot*, not the PIN), flags,
  reserved, time (old BW firmware; pyzk's ``HB4sB`` is wrong, fananimi/pyzk#56/#92/#99).
  Flags, per the 2006 manual §3 "Attendance record structure" (pyzk
  ``docs/_static/Communication_protocol_manual_CMD.pdf``): bits 0-2 the attendance state,
  bits 3-4 the verify method (0 password, 1 fingerprint, 2 card), bit 5 the long-time
  marker. The samples of fananimi/pyzk#99 (``07002800a8eba71e``: slot 7, flags 0x28 = state 0
  check-in, verify 1 fingerprint, long time; 2016-01-01 12:02:00) and #56/#92 (flags 0x08)
  agree. The slot is mapped to the PIN through the user table (``users.py``).
* 16 bytes ``<I4sBB2sI`` PIN, time, **state, verify**, reserved, workcode (2006 manual
  ``TExtendAttLog``).
* 40 bytes ``<H24sB4sB8s`` uid, PIN (ASCII, NUL padded), **verify**, time, **state**,
  reserved (TFT; adrobinoga ``data-record.md``). Note the state/verify swap against 16 bytes.
* 49 bytes: the 40-byte layout + 9 undocumented bytes (fananimi/pyzk#174, #222).

Some firmware put a 9-byte marker ``ff "255" 00 00 00 00 00`` before the records; pyzk2 0.2
(``pyzk2/base.py`` l.1656) strips it where a record should start. Here a marker at the start
of the log, or at the start of a 49-byte record (then its 40-byte record follows), is
decoded around and reported once per download (``RecordIssue`` kind ``marker``), instead of
shifting every record by 9 bytes.

The parser never raises: a record it cannot trust is reported (index + raw hex) and
skipped; the other records are unaffected. Times are naive terminal-local datetimes.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from datetime import datetime

from drivers.zk_terminal.codec import decode_time, decode_time_fields, decode_timehex

RECORD_SIZES = (40, 49, 16, 8)
_R40 = struct.Struct("<H24sBIB")
_R16 = struct.Struct("<IIBB2sI")
_R8 = struct.Struct("<HBBI")
#: The leading marker some firmware write (pyzk2 0.2 strips exactly these 9 bytes).
MARKER = b"\xff255\x00\x00\x00\x00\x00"
#: 8-byte flags: state bits 0-2, verify bits 3-4, long-time marker bit 5 (2006 manual §3).
BW_LONG_TIME = 0x20
#: Verify codes of the gateway (``gateway.pipeline.punch.VERIFY``) → the BW 2-bit code.
BW_VERIFY = {0: 0, 3: 0, 1: 1, 2: 2, 4: 2}
_RESERVED40 = b"\x00\x00\x00\x00\xff\x00\x00\x00"
#: Times before this are what a terminal writes after its RTC battery died (notes §5.2).
CLOCK_RESET_BEFORE = datetime(2001, 1, 1)


@dataclass(frozen=True, slots=True)
class AttRecord:
    """One good record. ``suspect`` names a doubt that does not justify dropping it."""

    index: int
    user_id: str
    time: datetime
    state: int
    verify: int
    uid: int | None = None
    workcode: int | None = None
    suspect: str | None = None
    flags: int | None = None  # the raw flag byte of an 8-byte record


@dataclass(frozen=True, slots=True)
class RecordIssue:
    """A problem with one record (``index`` ≥ 0) or with the whole log (``index`` = -1)."""

    index: int
    kind: str  # corrupt | invalid_date | suspect_time | truncated | size | trailing | marker
    #          | unknown_user
    detail: str
    raw_hex: str = ""
    skipped: bool = True

    def as_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "kind": self.kind,
            "detail": self.detail,
            "raw": self.raw_hex,
            "skipped": self.skipped,
        }


@dataclass(slots=True)
class AttLog:
    """A downloaded log, sliced into records lazily (a 100k log stays one bytes object).

    A *tail* (``tail.py``) holds only the records from index ``base`` on; ``marker`` is the
    number of marker bytes taken off the front of the terminal's dataset body."""

    body: bytes
    record_size: int
    count: int
    declared_bytes: int
    issues: list[RecordIssue] = field(default_factory=list)
    base: int = 0
    marker: int = 0

    @property
    def total(self) -> int:
        """Records in the terminal's whole log (a tail's included)."""
        return self.base + self.count

    def records(
        self, start: int = 0, stop: int | None = None
    ) -> tuple[list[AttRecord], list[RecordIssue]]:
        """Parse records ``[start, stop)``; bad ones become issues."""
        stop = self.count if stop is None else min(stop, self.count)
        out: list[AttRecord] = []
        bad: list[RecordIssue] = []
        rs, base = self.record_size, self.base
        for i in range(max(start, 0), stop):
            rec, issue = parse_record(self.body[i * rs : (i + 1) * rs], rs, base + i)
            if rec is not None:
                out.append(rec)
            if issue is not None:
                bad.append(issue)
        return out, bad


def open_attlog(
    data: bytes, records_hint: int | None = None, record_size: int | None = None
) -> AttLog:
    """Split a dataset (``u32 total`` + records) into a record view. Never raises."""
    issues: list[RecordIssue] = []
    if len(data) < 4:
        if data:
            issues.append(RecordIssue(-1, "truncated", f"{len(data)}-byte dataset", data.hex()))
        return AttLog(b"", record_size or 40, 0, 0, issues)
    (declared,) = struct.unpack_from("<I", data)
    body = data[4 : 4 + declared]
    if len(data) - 4 < declared:
        issues.append(
            RecordIssue(-1, "truncated", f"header says {declared} bytes, got {len(data) - 4}")
        )
    marker = 0
    if _log_marker(body, records_hint):
        body, declared, marker = body[len(MARKER) :], declared - len(MARKER), len(MARKER)
        issues.append(
            RecordIssue(
                -1,
                "marker",
                "log starts with the 9-byte ff'255' marker; decoded after it",
                MARKER.hex(),
                skipped=False,
            )
        )
    rs = record_size or choose_record_size(declared, records_hint)
    count, trailing = divmod(len(body), rs)
    if trailing:
        issues.append(
            RecordIssue(
                count,
                "trailing",
                f"{trailing} bytes after the last whole {rs}-byte record",
                body[count * rs :].hex(),
            )
        )
    if records_hint and declared % rs == 0 and declared // rs != records_hint:
        issues.append(
            RecordIssue(
                -1,
                "size",
                f"terminal said {records_hint} records, dataset holds {declared // rs}",
                skipped=False,
            )
        )
    return AttLog(bytes(body), rs, count, declared, issues, 0, marker)


def _log_marker(body: bytes, hint: int | None) -> bool:
    """True if ``body`` is a whole log only once a leading marker is taken off."""
    if not body.startswith(MARKER):
        return False
    rest = len(body) - len(MARKER)
    if hint and rest % hint == 0 and rest // hint in RECORD_SIZES:
        return True
    whole = [rs for rs in RECORD_SIZES if len(body) % rs == 0]
    return not whole and any(rest % rs == 0 for rs in RECORD_SIZES)


def choose_record_size(total: int, records_hint: int | None) -> int:
    """pyzk's ``total // records``, made robust to a punch landing between the two reads."""
    if records_hint and records_hint > 0:
        exact = total // records_hint
        if total % records_hint == 0 and exact in RECORD_SIZES:
            return exact
        fits = [rs for rs in RECORD_SIZES if total % rs == 0] or list(RECORD_SIZES)
        return min(fits, key=lambda rs: (abs(total / rs - records_hint), RECORD_SIZES.index(rs)))
    return next((rs for rs in RECORD_SIZES if total and total % rs == 0), 40)


_PIN = re.compile(rb"[\x21-\x7e]{1,24}\Z")


def _pin_ok(pin: bytes) -> bool:
    """A user id is 1-24 printable ASCII characters (corrupt records are not)."""
    return _PIN.match(pin) is not None


def parse_record(raw: bytes, rs: int, index: int) -> tuple[AttRecord | None, RecordIssue | None]:
    """One record → (record, None) | (None, issue) | (record, suspect-issue). Never raises."""
    if len(raw) != rs or rs not in RECORD_SIZES:
        return None, RecordIssue(index, "corrupt", f"{len(raw)} bytes, expected {rs}", raw.hex())
    uid: int | None
    workcode: int | None = None
    if rs == 49 and raw.startswith(MARKER):
        raw = raw[len(MARKER) :]  # a per-record marker: the 40-byte record follows it
    if rs >= 40:
        uid, pin_b, verify, t, state = _R40.unpack_from(raw)
        pin = pin_b.split(b"\x00", 1)[0]
        if not _pin_ok(pin):
            return None, RecordIssue(
                index, "corrupt", f"unreadable user id {pin_b[:8].hex()}…", raw.hex()
            )
        user_id = pin.decode("ascii")
    elif rs == 16:
        pin_i, t, state, verify, _res, workcode = _R16.unpack_from(raw)
        if pin_i in (0, 0xFFFFFFFF):
            return None, RecordIssue(index, "corrupt", f"user id {pin_i}", raw.hex())
        user_id, uid = str(pin_i), None
    else:
        uid, flags, _res, t = _R8.unpack_from(raw)
        if uid in (0, 0xFFFF):
            return None, RecordIssue(index, "corrupt", f"uid {uid}", raw.hex())
        state, verify = flags & 0x07, (flags >> 3) & 0x03
        user_id = str(uid)  # a slot, not a PIN: the driver maps it (``users.py``)
    when = decode_time(t)
    if when is None:
        y, mo, d, h, mi, s = decode_time_fields(t)
        return None, RecordIssue(
            index,
            "invalid_date",
            f"user {user_id}: {y:04d}-{mo:02d}-{d:02d} {h:02d}:{mi:02d}:{s:02d}",
            raw.hex(),
        )
    flag_byte = raw[2] if rs == 8 else None
    rec = AttRecord(index, user_id, when, state, verify, uid, workcode, None, flag_byte)
    if when < CLOCK_RESET_BEFORE:
        rec = AttRecord(
            index, user_id, when, state, verify, uid, workcode, "clock_reset", flag_byte
        )
        return rec, RecordIssue(
            index,
            "suspect_time",
            f"user {user_id}: {when.isoformat()} (terminal clock reset?) kept, flagged",
            raw.hex(),
            skipped=False,
        )
    return rec, None


# -- encoders (the simulator uses these) ----------------------------------------------
def encode_record(  # noqa: PLR0917 - the record's fields, in wire order
    rs: int, user_id: str, t: int, state: int, verify: int, uid: int = 0, workcode: int = 0
) -> bytes:
    """One record in layout ``rs``; ``t`` is the raw u32 ZK time (may be an invalid date).

    For ``rs`` 8 the record holds the slot ``uid`` (not ``user_id``) and ``verify`` must be
    a BW 2-bit code (``BW_VERIFY``)."""
    if rs >= 40:
        rec = (
            _R40.pack(
                uid & 0xFFFF,
                user_id.encode("ascii")[:24],
                verify & 0xFF,
                t & 0xFFFFFFFF,
                state & 0xFF,
            )
            + _RESERVED40
        )
        return rec + bytes(rs - 40)
    if rs == 16:
        return _R16.pack(
            int(user_id), t & 0xFFFFFFFF, state & 0xFF, verify & 0xFF, b"\0\0", workcode
        )
    flags = (state & 0x07) | (verify & 0x03) << 3 | BW_LONG_TIME
    return _R8.pack(uid & 0xFFFF, flags, 0, t & 0xFFFFFFFF)


def encode_user(  # noqa: PLR0917 - the record's fields, in wire order
    size: int, uid: int, user_id: str, name: str, privilege: int = 0, card: int = 0
) -> bytes:
    """A user record as pyzk ``get_users`` reads it (28 or 72 bytes)."""
    if size == 28:
        return struct.pack(
            "<HB5s8sIxBhI", uid, privilege, b"", name.encode()[:8], card, 1, 0, int(user_id)
        )
    return struct.pack(
        "<HB8s24sIx7sx24s",
        uid,
        privilege,
        b"",
        name.encode()[:24],
        card,
        b"1",
        user_id.encode()[:24],
    )


# -- live events (CMD_REG_EVENT 500, EF_ATTLOG) -----------------------------------------
@dataclass(frozen=True, slots=True)
class LiveEvent:
    """One EF_ATTLOG event. ``id_kind`` "uid" means an internal slot number, not the PIN."""

    user_id: str
    time: datetime
    state: int
    verify: int
    id_kind: str
    size: int


def encode_event(  # noqa: PLR0917 - the event's fields, in wire order
    size: int, user_id: str, when: datetime, state: int, verify: int, uid: int = 0
) -> bytes:
    """EF_ATTLOG payload: verify then state (2006 manual §4: "matching way", then state)."""
    th = bytes((when.year - 2000, when.month, when.day, when.hour, when.minute, when.second))
    if size == 10:
        # 2006 manual §4: byte 4 = valid flag (high nibble) | state (low nibble)
        return struct.pack("<HBB", uid & 0xFFFF, verify, 0x10 | (state & 0x0F)) + th
    if size == 12:
        return struct.pack("<IBB", int(user_id), verify, state) + th
    head = user_id.encode("ascii")[:24].ljust(24, b"\x00") + bytes((verify, state)) + th
    return head + bytes(max(size - 32, 0))


def parse_event(payload: bytes) -> tuple[list[LiveEvent], list[str]]:
    """Decode an EF_ATTLOG payload like pyzk does, without its crashes (notes §1.8)."""
    events: list[LiveEvent] = []
    problems: list[str] = []
    data = payload
    while len(data) >= 10:
        n = len(data)
        if n in (10, 14):
            uid, verify, state = struct.unpack_from("<HBB", data)
            user_id, kind, th, used = str(uid), "uid", data[4:10], n
        elif n == 12:
            pin, verify, state = struct.unpack_from("<IBB", data)
            user_id, kind, th, used = str(pin), "pin", data[6:12], 12
        elif n >= 32:
            pin_b = data[:24].split(b"\x00", 1)[0]
            verify, state = data[24], data[25]
            th, kind = data[26:32], "pin"
            used = 52 if n >= 52 else n
            if not _pin_ok(pin_b):
                problems.append(f"unreadable user id in event {data[:used].hex()}")
                data = data[used:]
                continue
            user_id = pin_b.decode("ascii")
        else:
            problems.append(f"unknown {n}-byte event payload {data.hex()}")
            break
        when = decode_timehex(th)
        if when is None:
            problems.append(f"invalid event time {th.hex()} for user {user_id}")
        else:
            events.append(
                LiveEvent(
                    user_id, when, state & 0x0F if kind == "uid" else state, verify, kind, used
                )
            )
        data = data[used:]
    return events, problems
