"""The ``em4100`` framing: the 14-byte frame of RDM6300-style 125 kHz EM4100 modules.

``02`` + 10 ASCII-hex data chars (5 bytes: version/customer byte + 32-bit card number) +
2 ASCII-hex chars of the XOR of those 5 bytes + ``03``. Datasheet example: data
``62E3086CED`` has checksum ``08`` (Seeed 125 kHz RFID module datasheet p.3, cited in
notes/pi-serial-gpio-systemd.md §1.1). The module repeats the frame about every 50 ms while a
tag is in the field; de-duplication is the driver's job.

Decoding is strict: the frame has a fixed length and a fixed alphabet, so a non-hex byte or a
missing ETX rejects the candidate at once and the codec resynchronises on the next STX. The
buffer never holds more than one frame (13 bytes).
"""

from __future__ import annotations

from drivers.serial_reader.codec import ETX, HEX_DIGITS, STX, Frame, _Base

FRAME_LEN = 14


def checksum_of(data_hex: str) -> int:
    """XOR of the 5 bytes that 10 hex chars spell."""
    x = 0
    for b in bytes.fromhex(data_hex):
        x ^= b
    return x


class Em4100Codec(_Base):
    """STX + 10 hex + 2 hex XOR + ETX."""

    name = "em4100"

    def feed(self, data: bytes) -> list[Frame]:
        out: list[Frame] = []
        buf = self._buf
        buf += data
        while buf:
            if buf[0] != STX:
                self._skip_to_stx(buf, out)
                continue
            used = self._scan(buf, out)
            if used == 0:
                break  # an incomplete but so far valid frame: wait for more bytes
            del buf[:used]
        return out

    def _scan(self, buf: bytearray, out: list[Frame]) -> int:
        """Bytes consumed from a buffer that starts with STX (0 = need more)."""
        limit = min(len(buf), FRAME_LEN)
        for k in range(1, limit):
            c = buf[k]
            if k <= 12:
                if c == STX:  # cut-short frame: resync at the new STX
                    out.append(self._noise(bytes(buf[:k])))
                    return k
                if c not in HEX_DIGITS:
                    out.append(self._noise(bytes(buf[: k + 1])))
                    return k + 1
                continue
            # k == 13: the ETX position
            if c == ETX:
                raw = bytes(buf[:FRAME_LEN])
                text = raw[1:13].decode("ascii").upper()
                if checksum_of(text[:10]) == int(text[10:], 16):
                    out.append(self._ok(raw, text[:10]))
                else:
                    out.append(self._bad(raw))
                return FRAME_LEN
            if c == STX:
                out.append(self._noise(bytes(buf[:13])))
                return 13
            out.append(self._noise(bytes(buf[:FRAME_LEN])))  # no STX inside: safe to drop
            return FRAME_LEN
        return 0

    def encode(self, data: str) -> bytes:
        text = data.upper()
        if len(text) != 10 or not all(b in HEX_DIGITS for b in text.encode("ascii", "replace")):
            raise ValueError(f"an em4100 frame carries exactly 10 hex chars, got {data!r}")
        return bytes([STX]) + f"{text}{checksum_of(text):02X}".encode("ascii") + bytes([ETX])

    def corrupt(self, data: str) -> bytes:
        frame = bytearray(self.encode(data))
        good = int(frame[11:13].decode("ascii"), 16)
        frame[11:13] = f"{good ^ 0x5A:02X}".encode("ascii")
        return bytes(frame)
