"""Card-number normalisation: the frame's text → the ``user_id`` the cloud sees.

The same card must give the same id whatever reader it was swiped on, so numbers are parsed
to an integer and printed in one canonical form:

* ``data_format`` says how the reader writes the number: ``"decimal"`` or ``"hex"``
  (``em4100`` frames are always hex).
* EM4100 frames carry 5 bytes (a version/customer byte + 32 bits); the card number is the
  low 32 bits, the number printed on the card and the one ZKTeco terminals store for the same
  card, so a card enrolled on a ZK clock and swiped on a serial reader gives the same user_id.
* ``card_format = "decimal"`` prints the integer without leading zeros (``"0008921324"`` and
  ``"8921324"`` are the same card); ``"hex"`` prints upper-case hex without leading zeros.
* ``wiegand26 = true`` prints ``facility:card`` from the low 24 bits (facility = bits 16-23,
  card = bits 0-15), as EM4100→Wiegand-26 readers do: ``"123:45678"`` (hex: ``"7B:B26E"``).
"""

from __future__ import annotations

from dataclasses import dataclass

DATA_FORMATS = ("decimal", "hex")
CARD_FORMATS = ("decimal", "hex")
_DEC = frozenset("0123456789")
_HEX = frozenset("0123456789abcdefABCDEF")


@dataclass(frozen=True, slots=True)
class CardFormat:
    """How to read a frame's text and how to print the card number."""

    framing: str = "line"
    data_format: str = "decimal"
    card_format: str = "decimal"
    wiegand26: bool = False


def card_value(text: str, fmt: CardFormat) -> int | None:
    """The card's integer, or None when the text is not a number in the expected format."""
    if fmt.framing == "em4100":
        if len(text) != 10 or not set(text) <= _HEX:
            return None
        return int(text, 16) & 0xFFFFFFFF
    if not text or len(text) > 32:
        return None
    if fmt.data_format == "hex":
        return int(text, 16) if set(text) <= _HEX else None
    return int(text, 10) if set(text) <= _DEC else None


def format_card(value: int, fmt: CardFormat) -> str:
    """Print a card integer in the configured canonical form."""
    if fmt.wiegand26:
        facility, card = (value >> 16) & 0xFF, value & 0xFFFF
        if fmt.card_format == "hex":
            return f"{facility:02X}:{card:04X}"
        return f"{facility}:{card}"
    return f"{value:X}" if fmt.card_format == "hex" else str(value)


def normalise(text: str, fmt: CardFormat) -> str | None:
    """Frame text → user_id; None if the text is not a card number (counted as bad_card)."""
    value = card_value(text.strip(), fmt)
    return None if value is None else format_card(value, fmt)
