"""Sans-IO card-reader codecs: the shared frame type, counters, protocol and name → codec map.

Every codec turns a byte stream into frames (``feed``) and frames into bytes (``encode``,
used by the simulator and round-trip tests). ``feed`` never raises, whatever the input: a
reader on a noisy RS485 line, at the wrong baud rate or with A/B swapped sends garbage, and
garbage must become counters and ring-buffer entries, never an exception
(notes/pi-serial-gpio-systemd.md §1.2). Partial frames survive across ``feed`` calls; the
buffer is bounded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal, Protocol

Verdict = Literal["ok", "bad_checksum", "noise", "overflow"]

STX = 0x02
ETX = 0x03
CR = 0x0D
LF = 0x0A
HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")


def is_printable(b: int) -> bool:
    """Printable ASCII: what a reader puts between its framing bytes."""
    return 0x20 <= b <= 0x7E


def xor8(data: bytes | bytearray) -> int:
    """The BCC used by EM4100 modules and STX/ETX readers: XOR of every byte."""
    x = 0
    for b in data:
        x ^= b
    return x


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoding outcome: a good frame (``data`` set) or bytes that were rejected."""

    raw: bytes
    verdict: Verdict
    #: The payload text of a good frame (card number as the reader sent it); else None.
    data: str | None = None


@dataclass(slots=True)
class Counters:
    """Running totals a technician reads in ``terminal probe`` (a rising bad_checksum count is
    the field signal for wrong baud/parity, missing termination or swapped A/B)."""

    frames: int = 0
    noise_bytes: int = 0
    bad_checksum: int = 0
    overflow: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class Codec(Protocol):
    """What every framing offers."""

    name: str
    counters: Counters

    def feed(self, data: bytes) -> list[Frame]:
        """Consume bytes; return the frames (good and rejected) they completed. Never raises."""

    def pending(self) -> int:
        """Bytes held for an incomplete frame."""

    def discard_partial(self) -> Frame | None:
        """Drop an incomplete frame (counted as noise), e.g. after a long silence or a reopen."""

    def encode(self, data: str) -> bytes:
        """The bytes a reader sends for ``data``; ``ValueError`` if it cannot be framed."""

    def corrupt(self, data: str) -> bytes:
        """A damaged frame for ``data`` that the decoder must reject (simulator fault)."""


class _Base:
    """Shared bookkeeping: counters and how rejected bytes become frames."""

    name = "base"

    def __init__(self) -> None:
        self.counters = Counters()
        self._buf = bytearray()

    def pending(self) -> int:
        return len(self._buf)

    def discard_partial(self) -> Frame | None:
        if not self._buf:
            return None
        raw = bytes(self._buf)
        self._buf.clear()
        return self._noise(raw)

    def _noise(self, raw: bytes) -> Frame:
        self.counters.noise_bytes += len(raw)
        return Frame(raw, "noise")

    def _skip_to_stx(self, buf: bytearray, out: list[Frame]) -> None:
        """Drop whatever precedes the next STX (all of ``buf`` if none) as one noise frame."""
        i = buf.find(STX)
        n = len(buf) if i < 0 else i
        out.append(self._noise(bytes(buf[:n])))
        del buf[:n]

    def _ok(self, raw: bytes, data: str) -> Frame:
        self.counters.frames += 1
        return Frame(raw, "ok", data)

    def _bad(self, raw: bytes) -> Frame:
        self.counters.bad_checksum += 1
        return Frame(raw, "bad_checksum")

    def _overflow(self, raw: bytes) -> Frame:
        self.counters.overflow += 1
        return Frame(raw, "overflow")


FRAMINGS = ("line", "stx_etx", "em4100")
CHECKSUMS = ("none", "xor", "xor_hex")
