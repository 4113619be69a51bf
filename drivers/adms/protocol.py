"""The ``iclock`` push protocol, sans-IO: request bodies in, records and answer texts out.

Nothing here touches a socket or raises on bad input: a line that cannot be read becomes a
``BadLine`` with its number and reason, and the rest of the body is still read (PRODUCT.md
§7: keep every good record, report the bad one).

Sources (issue 15, notes ``field.md`` and ``pyzk-and-peers.md`` §4.3):

* ATTLOG upload ``POST /iclock/cdata?SN=..&table=ATTLOG&Stamp=..``: one record per line,
  tab-separated ``PIN, YYYY-MM-DD HH:MM:SS (terminal local), Status, Verify, Workcode,
  Reserved1, Reserved2`` (PUSH SDK V2.0.1/V3.2.0), newer firmware adds MaskFlag,
  Temperature... (kept in ``raw``). Dialects seen in public servers: the time as a Unix
  epoch integer (s0x90/zkteco-adms ``parser.go``: "inherently UTC"), and ``key=value``
  fields (``PIN=1001  DateTime=..  Verified=1  Status=0``, s0x90/zkteco-adms
  ``datasheet/ADMS.md``).
* Command results ``POST /iclock/devicecmd``: ``ID=1&Return=0&CMD=INFO`` one per line,
  batched, or one ``key=value`` per line with ``Content=`` (SpeedFace-V5L capture in
  ``datasheet/ADMS.md``; parsing both like s0x90's ``parseCommandResults``).
* The handshake answer ``GET OPTION FROM: <SN>`` + options (notes §4.3).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import quote
from zoneinfo import ZoneInfo

#: Tables the gateway ingests; every other table is accepted and counted (issue 15).
INGESTED = frozenset({"ATTLOG"})
#: Tables terminals are known to push (notes §4.3, s0x90/zkteco-adms datasheet, PUSH SDK).
#: Another plausible name is accepted and counted too: a firmware table we do not know must
#: not make the terminal retry it forever. An implausible name is a 400.
KNOWN_TABLES = frozenset({
    "ATTLOG", "OPERLOG", "ATTPHOTO", "BIODATA", "BIOPHOTO", "OPTIONS", "INFO", "USERINFO",
    "USER", "FINGERTMP", "FACE", "ERRORLOG", "RTLOG", "RTSTATE", "WORKCODE", "SMS", "USERPIC",
})  # fmt: skip
_TABLE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")
MAX_PIN = 24  # ZK PINs are up to 9 digits (old) or 24 characters (face terminals)
_SN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # s0x90/zkteco-adms validateSerialNumber
_KV = re.compile(r"([A-Za-z][A-Za-z0-9_]*)=(.*?)(?=\s+[A-Za-z][A-Za-z0-9_]*=|$)")
_EPOCH_MIN, _EPOCH_MAX = 946684800, 4102444800  # 2000-01-01 .. 2100-01-01 UTC


def valid_sn(sn: str | None) -> bool:
    """A serial number the listener will even look up (letters, digits, '-', '_')."""
    return bool(sn) and _SN.match(sn or "") is not None


@dataclass(frozen=True, slots=True)
class AttRecord:
    """One ATTLOG line. ``local`` is the terminal's naive local time."""

    pin: str
    local: datetime
    status: int
    verify: int
    workcode: str = ""
    extra: tuple[str, ...] = ()
    dialect: str = "tab"


@dataclass(frozen=True, slots=True)
class BadLine:
    lineno: int
    reason: str
    text: str  # the line, cut to 120 characters (never a secret: attendance data)


@dataclass
class Parsed:
    records: list[AttRecord] = field(default_factory=list)
    bad: list[BadLine] = field(default_factory=list)


def event_id(sn: str, rec: AttRecord) -> str:
    """Deterministic id from the record's content: SN, PIN, local time, status, verify.

    The same record uploaded twice (a stamp reset, a ``DATA QUERY`` re-send, a re-upload of
    everything) gives the same id, and the store keeps one (PRODUCT.md §8).
    """
    t = rec.local
    stamp = "%04d%02d%02dT%02d%02d%02d" % (  # noqa: UP031 - hot path, as in zk punches.py
        t.year,
        t.month,
        t.day,
        t.hour,
        t.minute,
        t.second,
    )
    return f"adms-{sn}-{quote(rec.pin, safe='')}-{stamp}-{rec.status}-{rec.verify}"


def parse_attlog(body: bytes, zone: ZoneInfo) -> Parsed:
    """Every ATTLOG line of an upload body; bad lines reported, never raised."""
    out = Parsed()
    text = body.decode("utf-8", "replace")
    for lineno, raw in enumerate(text.split("\n"), 1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        rec = _line(line, zone)
        if isinstance(rec, str):
            out.bad.append(BadLine(lineno, rec, line[:120]))
        else:
            out.records.append(rec)
    return out


def _line(line: str, zone: ZoneInfo) -> AttRecord | str:
    if "\t" not in line and _KV.match(line.strip()):
        return _kv_line(line.strip(), zone)
    parts = line.split("\t")
    if parts[0].strip().upper().startswith("PIN="):
        return _kv_line(line.strip(), zone)
    if len(parts) < 2:
        return "fewer than 2 fields (PIN, time)"
    when = _time(parts[1].strip(), zone)
    if isinstance(when, str):
        return when
    local, dialect = when
    status = _int(parts[2] if len(parts) > 2 else "0")
    verify = _int(parts[3] if len(parts) > 3 else "0")
    if status is None or verify is None:
        return "status or verify is not an integer"
    return _record(
        parts[0].strip(),
        local,
        status,
        verify,
        parts[4].strip() if len(parts) > 4 else "",
        tuple(p.strip() for p in parts[5:]),
        dialect,
    )


def _kv_line(line: str, zone: ZoneInfo) -> AttRecord | str:
    fields = dict(_kv_pairs(line))
    if "PIN" not in fields:
        return "key=value line without PIN"
    raw_time = fields.get("DateTime") or fields.get("Time") or ""
    when = _time(raw_time, zone)
    if isinstance(when, str):
        return when
    status = _int(fields.get("Status", "0"))
    verify = _int(fields.get("Verified", fields.get("Verify", "0")))
    if status is None or verify is None:
        return "Status or Verified is not an integer"
    known = {"PIN", "DateTime", "Time", "Status", "Verified", "Verify", "WorkCode"}
    extra = tuple(f"{k}={v}" for k, v in fields.items() if k not in known)
    return _record(fields["PIN"], when[0], status, verify, fields.get("WorkCode", ""), extra, "kv")


def _kv_pairs(line: str) -> Iterator[tuple[str, str]]:
    for part in re.split(r"\t", line) if "\t" in line else [line]:
        for m in _KV.finditer(part.strip()):
            yield m.group(1), m.group(2).strip()


def _record(  # noqa: PLR0917 - one record's fields, private
    pin: str,
    local: datetime,
    status: int,
    verify: int,
    workcode: str,
    extra: tuple[str, ...],
    dialect: str,
) -> AttRecord | str:
    if not pin or len(pin) > MAX_PIN or not pin.isprintable() or pin != pin.strip():
        return f"PIN must be 1..{MAX_PIN} printable characters"
    return AttRecord(pin, local, status, verify, workcode, extra, dialect)


def _time(text: str, zone: ZoneInfo) -> tuple[datetime, str] | str:
    """``YYYY-MM-DD HH:MM:SS`` (terminal local) or a Unix epoch (UTC, turned local)."""
    if text.isdigit():
        epoch = int(text)
        if not _EPOCH_MIN <= epoch < _EPOCH_MAX:
            return f"epoch time out of range: {text[:20]}"
        utc = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=epoch)
        return utc.astimezone(zone).replace(tzinfo=None), "epoch"
    try:
        when = datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return f"time is not YYYY-MM-DD HH:MM:SS or an epoch: {text[:30]!r}"
    if not 2000 <= when.year < 2100:
        return f"year out of range: {text}"
    return when, "tab"


def _int(text: str) -> int | None:
    text = text.strip()
    if not text:
        return 0
    try:
        value = int(text)
    except ValueError:
        return None
    return value if -(2**31) <= value < 2**31 else None


def plausible_table(name: str) -> bool:
    """A ``table=`` a terminal could send (empty: a registry or options post)."""
    return not name or _TABLE.match(name) is not None


def count_lines(body: bytes) -> int:
    """Records in a table we do not ingest (OPERLOG, ATTPHOTO, BIODATA...): counted only."""
    return sum(1 for line in body.split(b"\n") if line.strip())


# -- commands -----------------------------------------------------------------------------
@dataclass(frozen=True)
class CommandResult:
    id: int
    ret: int | None
    cmd: str
    fields: Mapping[str, str]


def parse_devicecmd(body: bytes) -> list[CommandResult]:
    """Results of executed commands, batched (``ID=1&Return=0&CMD=INFO`` lines) or one
    ``key=value`` per line (``Content=`` for long answers); a new ``ID=`` starts a result."""
    text = body.decode("utf-8", "replace").replace("\r", "")
    out: list[CommandResult] = []
    current: dict[str, str] = {}

    def flush() -> None:
        ident = _int(current.get("ID", "x"))
        if "ID" in current and ident is not None:
            ret = _int(current["Return"]) if "Return" in current else None
            out.append(CommandResult(ident, ret, current.get("CMD", ""), dict(current)))
        current.clear()

    for line in text.split("\n"):
        parts = line.split("&") if "&" in line and not line.startswith("Content=") else [line]
        for part in parts:
            key, eq, value = part.partition("=")
            if not eq:
                continue
            key = key.strip()
            if key.upper() == "ID":
                flush()
                key = "ID"
            elif key.lower() == "return":
                key = "Return"
            current[key] = value.strip()
    flush()
    return out


def parse_kv_lines(body: bytes) -> dict[str, str]:
    """``key=value`` per line (or ``~key=value``, ``,``-separated): INFO and options bodies."""
    out: dict[str, str] = {}
    text = body.decode("utf-8", "replace")
    for part in re.split(r"[\n,\t]", text):
        key, eq, value = part.strip().partition("=")
        if eq and key:
            out[key.lstrip("~").strip()] = value.strip()
    return out


def options_reply(sn: str, options: Mapping[str, str | int]) -> bytes:
    """The handshake answer: ``GET OPTION FROM: <SN>`` and one option per line."""
    lines = [f"GET OPTION FROM: {sn}"] + [f"{k}={v}" for k, v in options.items()]
    return ("\n".join(lines) + "\n").encode()


def handshake_reply(  # noqa: PLR0917 - the options of one answer
    sn: str, stamp: str, delay_s: int, error_delay_s: int, tz: int | None, server_ver: str
) -> bytes:
    """Our handshake options (notes §4.3). ``tz`` None: no ``TimeZone`` line at all."""
    options: dict[str, str | int] = {
        "ATTLOGStamp": stamp,
        # OPERLOG and photos are not ingested: ask for nothing old (fewer uploads).
        "OPERLOGStamp": 9999,
        "ATTPHOTOStamp": 9999,
        "ErrorDelay": error_delay_s,
        "Delay": delay_s,
        "TransTimes": "00:00;14:05",
        "TransInterval": 1,
        "TransFlag": "TransData AttLog",
        "Realtime": 1,
        "Encrypt": 0,
        "ServerVer": server_ver,
        "PushProtVer": server_ver,
    }
    if tz is not None:
        options["TimeZone"] = tz
    return options_reply(sn, options)


def commands_reply(commands: list[tuple[int, str]]) -> bytes:
    """The answer to a ``getrequest`` poll: ``OK`` or ``C:<id>:<command>`` lines."""
    if not commands:
        return b"OK"
    return "".join(f"C:{i}:{c}\n" for i, c in commands).encode()


def parse_commands(body: bytes) -> list[tuple[int, str]]:
    """The terminal's side of ``commands_reply`` (the simulator uses it)."""
    out: list[tuple[int, str]] = []
    for line in body.decode("utf-8", "replace").split("\n"):
        if line.startswith("C:"):
            ident, _, cmd = line[2:].partition(":")
            if ident.isdigit():
                out.append((int(ident), cmd.rstrip("\r")))
    return out


def query_attlog(start: datetime, end: datetime) -> str:
    """``DATA QUERY ATTLOG``: the terminal re-sends the window as ATTLOG uploads (notes §4.3)."""
    return f"DATA QUERY ATTLOG StartTime={start:%Y-%m-%d %H:%M:%S}\tEndTime={end:%Y-%m-%d %H:%M:%S}"


def is_shell(command: str) -> bool:
    """``SHELL`` runs anything on the terminal's Linux (datasheet/ADMS.md): never sent."""
    return command.strip().split(" ", 1)[0].upper() == "SHELL"


def encode_zk_time(t: datetime) -> int:
    """The compact integer time ZK firmware reads in ``SET OPTION DateTime=`` (the same
    encoding as the 4370 protocol's; pyzk ``__encode_time``)."""
    return (
        ((t.year % 100) * 12 * 31 + (t.month - 1) * 31 + t.day - 1) * 86400
        + (t.hour * 60 + t.minute) * 60
        + t.second
    )


def decode_zk_time(value: int) -> datetime:
    second = value % 60
    value //= 60
    minute = value % 60
    value //= 60
    hour = value % 24
    value //= 24
    day = value % 31 + 1
    value //= 31
    month = value % 12 + 1
    value //= 12
    return datetime(value + 2000, month, day, hour, minute, second)


def timezone_option(zone: ZoneInfo, at: datetime) -> int | None:
    """``TimeZone=`` in whole hours, or None when the zone has a fractional offset.

    Terminals read whole hours: a server that sent 5.5 for India left clocks 30 minutes out,
    and a wrong zone moved terminals by hours (saifulcoder/adms-server-ZKTeco#14). A
    fractional zone gets no ``TimeZone`` line; the clock is then set only by
    ``SET OPTION DateTime=`` with the absolute local time.
    """
    offset = at.astimezone(zone).utcoffset() or timedelta(0)
    hours, rest = divmod(int(offset.total_seconds()), 3600)
    return None if rest else hours
