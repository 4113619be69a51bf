"""The ``stx_etx`` framing: ``STX data [checksum] ETX`` with printable-ASCII data.

Desktop/door readers in "RS232 STX/ETX" mode and many Wiegand→RS232/485 converters
(notes/pi-serial-gpio-systemd.md §1.1). The checksum, when configured, sits between the data
and ETX:

* ``none``: ``02 <data> 03``;
* ``xor_hex``: ``02 <data> <2 ASCII-hex chars of XOR(data)> 03``;
* ``xor``: ``02 <data> <1 binary byte XOR(data)> 03``. That byte may itself be 0x02 or 0x03
  (e.g. XOR("12") = 0x03), so the decoder tries both readings and waits for one more byte
  when only the next byte can tell.

A new STX inside a frame means the previous frame was cut short: its bytes are noise and
decoding restarts at the new STX. Data is at most ``max_len`` bytes; a longer run without ETX
is an overflow and is dropped.
"""

from __future__ import annotations

from drivers.serial_reader.codec import (
    CHECKSUMS,
    ETX,
    HEX_DIGITS,
    STX,
    Frame,
    _Base,
    is_printable,
    xor8,
)


class StxEtxCodec(_Base):
    """STX … ETX with an optional XOR block check."""

    name = "stx_etx"

    def __init__(self, *, checksum: str = "none", max_len: int = 64) -> None:
        super().__init__()
        if checksum not in CHECKSUMS:
            raise ValueError(f"checksum must be one of {', '.join(CHECKSUMS)}")
        self.checksum = checksum
        self.max_len = max_len

    # -- decoding ------------------------------------------------------------------------
    def feed(self, data: bytes) -> list[Frame]:
        out: list[Frame] = []
        buf = self._buf
        buf += data
        while buf:
            if buf[0] != STX:
                self._skip_to_stx(buf, out)
                continue
            step = self._binary(buf) if self.checksum == "xor" else self._plain(buf)
            if step is None:
                if len(buf) > self.max_len + 4:  # STX + data + up to 2 check bytes + ETX
                    out.append(self._overflow(bytes(buf)))
                    buf.clear()
                break
            used, frame = step
            out.append(frame)
            del buf[:used]
        return out

    def _plain(self, buf: bytearray) -> tuple[int, Frame] | None:
        """Frames whose every byte between STX and ETX is printable (none, xor_hex)."""
        j = _run_end(buf)
        if j is None:
            return None
        c = buf[j]
        raw = bytes(buf[: j + 1])
        if c == STX:  # the previous frame was cut short: resync at this STX
            return j, self._noise(bytes(buf[:j]))
        if c != ETX:  # a control byte inside a frame: not a frame
            return j + 1, self._noise(raw)
        body = bytes(buf[1:j])
        if self.checksum == "none":
            if not body or len(body) > self.max_len:
                return j + 1, self._noise(raw)
            return j + 1, self._ok(raw, body.decode("ascii"))
        data, check = body[:-2], body[-2:]
        if not data or len(data) > self.max_len or not all(b in HEX_DIGITS for b in check):
            return j + 1, self._bad(raw)
        if int(check.decode("ascii"), 16) != xor8(data):
            return j + 1, self._bad(raw)
        return j + 1, self._ok(raw, data.decode("ascii"))

    def _binary(self, buf: bytearray) -> tuple[int, Frame] | None:
        """``STX data BCC ETX`` where BCC is one binary byte (it may look like STX or ETX)."""
        j = _run_end(buf)
        if j is None:
            return None
        c = buf[j]
        run = bytes(buf[1:j])
        # Reading A: c is ETX and the last printable byte was the BCC.
        if (
            c == ETX
            and len(run) >= 2
            and xor8(run[:-1]) == run[-1]
            and len(run) <= self.max_len + 1
        ):
            return j + 1, self._ok(bytes(buf[: j + 1]), run[:-1].decode("ascii"))
        # Reading B: c is the BCC (any value, even 0x02/0x03) and ETX follows.
        if run and xor8(run) == c and len(run) <= self.max_len:
            if j + 1 >= len(buf):
                return None
            if buf[j + 1] == ETX:
                return j + 2, self._ok(bytes(buf[: j + 2]), run.decode("ascii"))
        if c == ETX:
            return j + 1, self._bad(bytes(buf[: j + 1]))
        if c == STX:
            return j, self._noise(bytes(buf[:j]))
        if j + 1 >= len(buf):  # c may be a (wrong) BCC: the next byte tells
            return None
        if buf[j + 1] == ETX:
            return j + 2, self._bad(bytes(buf[: j + 2]))
        return j + 1, self._noise(bytes(buf[: j + 1]))

    # -- encoding ------------------------------------------------------------------------
    def _check_data(self, data: str) -> bytes:
        raw = data.encode("ascii")
        if not raw or len(raw) > self.max_len or not all(is_printable(b) for b in raw):
            raise ValueError(
                f"stx_etx data is 1…{self.max_len} printable ASCII bytes, got {data!r}"
            )
        return raw

    def encode(self, data: str) -> bytes:
        raw = self._check_data(data)
        if self.checksum == "xor":
            return bytes([STX]) + raw + bytes([xor8(raw), ETX])
        if self.checksum == "xor_hex":
            return bytes([STX]) + raw + f"{xor8(raw):02X}".encode() + bytes([ETX])
        return bytes([STX]) + raw + bytes([ETX])

    def corrupt(self, data: str) -> bytes:
        raw = self._check_data(data)
        if self.checksum == "xor":
            return bytes([STX]) + raw + bytes([xor8(raw) ^ 0x5A, ETX])
        if self.checksum == "xor_hex":
            return bytes([STX]) + raw + f"{xor8(raw) ^ 0x5A:02X}".encode() + bytes([ETX])
        # No checksum to break: a control byte inside the frame makes it invalid instead.
        return bytes([STX]) + raw[:1] + b"\x1b" + raw[1:] + bytes([ETX])


def _run_end(buf: bytearray) -> int | None:
    """Index of the first non-printable byte after the STX; None while the frame is open."""
    j, n = 1, len(buf)
    while j < n and is_printable(buf[j]):
        j += 1
    return j if j < n else None
