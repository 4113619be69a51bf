"""Serial / RS485 card readers: sans-IO codecs, card-number normalisation, the driver, a simulator.

Importing this package does not import pyserial (only ``driver`` and ``sim`` do), so listing
drivers or framings stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable

from drivers.serial_reader.codec import CHECKSUMS, FRAMINGS, Codec, Counters, Frame
from drivers.serial_reader.em4100 import Em4100Codec
from drivers.serial_reader.line import LineCodec
from drivers.serial_reader.stx_etx import StxEtxCodec

#: framing name → codec factory (``checksum`` is used by stx_etx only).
CODECS: dict[str, Callable[[str], Codec]] = {
    "line": lambda checksum: LineCodec(),
    "stx_etx": lambda checksum: StxEtxCodec(checksum=checksum),
    "em4100": lambda checksum: Em4100Codec(),
}


def new_codec(framing: str, checksum: str = "none") -> Codec:
    """A fresh codec for ``framing``; ``ValueError`` names the valid framings."""
    try:
        factory = CODECS[framing]
    except KeyError:
        raise ValueError(
            f"unknown framing {framing!r}; expected one of {', '.join(FRAMINGS)}"
        ) from None
    return factory(checksum)


__all__ = [
    "CHECKSUMS",
    "CODECS",
    "FRAMINGS",
    "Codec",
    "Counters",
    "Em4100Codec",
    "Frame",
    "LineCodec",
    "StxEtxCodec",
    "new_codec",
]
