"""``[[terminals]]`` options of the serial driver, validated with every problem reported.

The config loader reads ``name`` and ``driver`` and calls ``Fields.done()`` itself; this module
reads only the serial keys. Unknown keys are therefore reported by the loader.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from drivers.serial_reader.cards import CARD_FORMATS, DATA_FORMATS, CardFormat
from drivers.serial_reader.codec import CHECKSUMS, FRAMINGS
from gateway.config.validate import Fields, show

#: The standard rates readers and USB adapters agree on.
BAUDRATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
PARITIES = ("none", "even", "odd")
#: How a reader writes its card number when the config does not say.
DEFAULT_DATA_FORMAT = {"line": "decimal", "stx_etx": "hex", "em4100": "hex"}


@dataclass(frozen=True, slots=True)
class Rs485Options:
    """Kernel RS485 mode (``TIOCSRS485``) for a Pi UART with a transceiver whose DE is on RTS.

    USB adapters with automatic direction control need none of this (and most refuse it).
    """

    rts_level_for_tx: bool = True
    rts_level_for_rx: bool = False
    delay_before_tx_s: float | None = None
    delay_before_rx_s: float | None = None


@dataclass(frozen=True, slots=True)
class SerialOptions:
    """A validated serial reader configuration."""

    port: str
    framing: str
    baudrate: int = 9600
    bytesize: int = 8
    parity: str = "none"
    stopbits: int = 1
    checksum: str = "none"
    data_format: str = "decimal"
    card_format: str = "decimal"
    wiegand26: bool = False
    debounce_s: float = 3.0
    rs485: Rs485Options | None = None

    @property
    def cards(self) -> CardFormat:
        return CardFormat(self.framing, self.data_format, self.card_format, self.wiegand26)

    @property
    def is_url(self) -> bool:
        """``socket://``, ``loop://``, ``rfc2217://``…: not a local device node."""
        return "://" in self.port


def _baudrate(fields: Fields) -> int:
    fields.ignore("baudrate")
    value: Any = fields.table.get("baudrate", 9600)
    if isinstance(value, bool) or value not in BAUDRATES:
        # Wording fixed by PRODUCT.md §3's example error.
        fields.error("baudrate", f"expected one of 1200…115200, got {show(value)}")
        return 9600
    return int(value)


def _rs485(fields: Fields) -> Rs485Options | None:
    if not fields.has("rs485"):
        return None
    fields.ignore("rs485")
    value: Any = fields.table["rs485"]
    if isinstance(value, bool):
        return Rs485Options() if value else None
    if not isinstance(value, Mapping):
        fields.error("rs485", f"expected true, false or a table, got {show(value)}")
        return None
    sub = Fields(value, fields.key_path("rs485"), fields.issues)
    opts = Rs485Options(
        rts_level_for_tx=sub.bool("rts_level_for_tx", True),
        rts_level_for_rx=sub.bool("rts_level_for_rx", False),
        delay_before_tx_s=sub.number("delay_before_tx_s", None, min=0, max=1),
        delay_before_rx_s=sub.number("delay_before_rx_s", None, min=0, max=1),
    )
    sub.done()
    return opts


def parse_options(fields: Fields) -> SerialOptions | None:
    """Read the serial keys of one ``[[terminals]]`` table; None if any is invalid."""
    port = fields.str("port")
    framing = fields.choice("framing", FRAMINGS)
    baudrate = _baudrate(fields)
    bytesize = fields.choice("bytesize", (5, 6, 7, 8), 8)
    parity = fields.choice("parity", PARITIES, "none")
    stopbits = fields.choice("stopbits", (1, 2), 1)
    checksum = fields.choice("checksum", CHECKSUMS, "none")
    if fields.has("checksum") and framing is not None and framing != "stx_etx":
        note = "em4100 frames always carry their XOR" if framing == "em4100" else "no checksum"
        fields.error("checksum", f'only used with framing = "stx_etx" ({framing}: {note})')
    data_format = fields.choice(
        "data_format", DATA_FORMATS, DEFAULT_DATA_FORMAT.get(framing or "line", "decimal")
    )
    if framing == "em4100" and data_format != "hex":
        fields.error("data_format", "em4100 frames are always hex; leave data_format out")
    card_format = fields.choice("card_format", CARD_FORMATS, "decimal")
    wiegand26 = fields.bool("wiegand26", False)
    debounce_s = fields.number("debounce_s", 3.0, min=0, max=3600)
    rs485 = _rs485(fields)
    if not fields.ok or port is None or framing is None:
        return None
    return SerialOptions(
        port=port,
        framing=framing,
        baudrate=baudrate,
        bytesize=bytesize,
        parity=parity,
        stopbits=stopbits,
        checksum=checksum,
        data_format=data_format,
        card_format=card_format,
        wiegand26=wiegand26,
        debounce_s=debounce_s,
        rs485=rs485,
    )
