"""The ``line`` framing: ASCII decimal or hex digits ended by CR/LF, CR or LF.

Used by "keyboard-style" serial readers and many Wiegand→RS232/485 converters, e.g.
``30 30 30 30 31 32 33 34 37 38 0D 0A`` for Wiegand 0x1E256 (notes/pi-serial-gpio-systemd.md
§1.1). There is no checksum, so the codec is strict about what a line may contain:

* a line is 4…32 characters of ``0-9 A-F a-f`` (spaces and tabs around them are trimmed);
* CR, LF, CRLF and LFCR all end a line; empty lines are ignored;
* junk bytes (anything else) *before* the first digit of a line are noise and skipped, so the
  codec resynchronises on the next clean line;
* a junk byte *after* a digit spoils the whole line up to its terminator (noise, never a
  phantom card), as does a line longer than 32 characters (overflow).
"""

from __future__ import annotations

from drivers.serial_reader.codec import CR, HEX_DIGITS, LF, Frame, _Base

_BLANK = frozenset(b" \t")
_TERMINATORS = {b"\r\n", b"\r", b"\n"}


class LineCodec(_Base):
    """Digits + line terminator."""

    name = "line"

    def __init__(self, *, min_len: int = 4, max_len: int = 32, terminator: bytes = b"\r\n"):
        super().__init__()
        if terminator not in _TERMINATORS:
            raise ValueError("terminator must be CR LF, CR or LF")
        self.min_len = min_len
        self.max_len = max_len
        self.terminator = terminator
        self._junk = bytearray()  # a run of leading junk not yet reported
        self._spoilt = False  # a junk byte followed a digit: the line is noise
        self._skipping = False  # an over-long line: drop until its terminator

    def pending(self) -> int:
        return len(self._buf) + len(self._junk)

    def discard_partial(self) -> Frame | None:
        raw = bytes(self._junk + self._buf)
        self._junk.clear()
        self._buf.clear()
        self._spoilt = self._skipping = False
        return self._noise(raw) if raw else None

    def feed(self, data: bytes) -> list[Frame]:
        out: list[Frame] = []
        buf = self._buf
        for b in data:
            if b in (CR, LF):
                self._flush_junk(out)
                if self._skipping:
                    self._skipping = False
                    if buf:
                        out.append(self._noise(bytes(buf)))
                    buf.clear()
                elif buf:
                    out.append(self._finish(bytes(buf)))
                    buf.clear()
                self._spoilt = False
                continue
            if self._skipping:
                buf.append(b)  # counted as noise at the terminator
                if len(buf) > self.max_len:
                    out.append(self._noise(bytes(buf)))
                    buf.clear()
                continue
            if b in HEX_DIGITS or b in _BLANK:
                if not buf and b in _BLANK:
                    continue  # leading blanks carry no information (and are not noise)
                self._flush_junk(out)
                buf.append(b)
            elif buf:  # junk after a digit: the line cannot be trusted
                self._spoilt = True
                buf.append(b)
            else:  # junk before any digit: skip it and resynchronise
                self._junk.append(b)
                if len(self._junk) >= 64:
                    self._flush_junk(out)
            if len(buf) > self.max_len:
                out.append(self._overflow(bytes(buf)))
                buf.clear()
                self._spoilt = False
                self._skipping = True
        self._flush_junk(out)
        return out

    def _flush_junk(self, out: list[Frame]) -> None:
        if self._junk:
            out.append(self._noise(bytes(self._junk)))
            self._junk.clear()

    def _finish(self, raw: bytes) -> Frame:
        text = raw.strip(b" \t")
        if self._spoilt or not (self.min_len <= len(text) <= self.max_len):
            return self._noise(raw)
        if any(b in _BLANK for b in text):
            return self._noise(raw)
        return self._ok(raw, text.decode("ascii"))

    def encode(self, data: str) -> bytes:
        raw = data.encode("ascii")
        if not (self.min_len <= len(raw) <= self.max_len) or not all(b in HEX_DIGITS for b in raw):
            raise ValueError(
                f"a line frame carries {self.min_len}…{self.max_len} decimal/hex digits, "
                f"got {data!r}"
            )
        return raw + self.terminator

    def corrupt(self, data: str) -> bytes:
        frame = self.encode(data)
        mid = max(1, len(data) // 2)
        return frame[:mid] + b"\xff" + frame[mid:]  # a junk byte spoils the line
