"""Card-number normalisation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.serial_reader.cards import CardFormat, normalise


@pytest.mark.parametrize(
    ("text", "fmt", "want"),
    [
        ("0000123478", CardFormat("line"), "123478"),
        ("123478", CardFormat("line"), "123478"),
        ("0001E256", CardFormat("line", data_format="hex"), "123478"),
        ("0000123478", CardFormat("line", card_format="hex"), "1E256"),
        ("1E256", CardFormat("line"), None),  # hex letters where decimal was promised
        ("12 34", CardFormat("line"), None),
        ("62E3086CED", CardFormat("em4100"), str(0xE3086CED)),
        ("62E3086CED", CardFormat("em4100", card_format="hex"), "E3086CED"),
        ("0000886CAB", CardFormat("em4100", wiegand26=True), f"{0x88}:{0x6CAB}"),
        ("7BB26E", CardFormat("stx_etx", data_format="hex", wiegand26=True), "123:45678"),
        (
            "7BB26E",
            CardFormat("stx_etx", data_format="hex", wiegand26=True, card_format="hex"),
            "7B:B26E",
        ),
        ("62E3086CE", CardFormat("em4100"), None),
        ("", CardFormat("line"), None),
    ],
)
def test_normalise(text: str, fmt: CardFormat, want: str | None) -> None:
    assert normalise(text, fmt) == want


@given(st.integers(0, 2**32 - 1))
def test_same_card_same_id_in_every_representation(n: int) -> None:
    dec = normalise(f"{n:010d}", CardFormat("line"))
    hexed = normalise(f"{n:08X}", CardFormat("stx_etx", data_format="hex"))
    em = normalise(f"00{n:08X}", CardFormat("em4100"))
    assert dec == hexed == em == str(n)


@given(st.text(max_size=40))
def test_never_raises(text: str) -> None:
    for fmt in (CardFormat("line"), CardFormat("em4100"), CardFormat("stx_etx", data_format="hex")):
        normalise(text, fmt)
