"""Codec tests: every framing decodes good frames, survives noise, split frames and bad
checksums, never raises, and round-trips its own encoder."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.serial_reader import CODECS, Codec, Em4100Codec, LineCodec, StxEtxCodec, new_codec

# Noise as a floating RS485 line produces it: non-ASCII bytes (never STX/ETX/CR/LF/digits).
NOISE = bytes([0x00, 0xFF, 0x80, 0xFE, 0xF8, 0x9C, 0xC0, 0x00, 0xE7])

CASES: list[tuple[str, str, list[str]]] = [
    ("line", "none", ["0000123478", "8921324", "1E256"]),
    ("stx_etx", "none", ["01E256", "0008921324", "AB12"]),
    ("stx_etx", "xor", ["12", "1A", "01E256", "0008921324"]),  # BCC 0x03 and a printable BCC
    ("stx_etx", "xor_hex", ["01E256", "0008921324"]),
    ("em4100", "none", ["62E3086CED", "0100886CAB", "ffffffffff"]),
]
IDS = [f"{f}-{c}" for f, c, _ in CASES]


def data_of(frames: list) -> list[str]:
    return [f.data for f in frames if f.verdict == "ok"]


def norm(framing: str, cards: list[str]) -> list[str]:
    return [c.upper() for c in cards] if framing == "em4100" else cards


def feed_all(codec: Codec, chunks: list[bytes]) -> list:
    out = []
    for chunk in chunks:
        out += codec.feed(chunk)
    return out


@pytest.mark.parametrize(("framing", "checksum", "cards"), CASES, ids=IDS)
def test_good_frames_decode(framing: str, checksum: str, cards: list[str]) -> None:
    codec = new_codec(framing, checksum)
    stream = b"".join(codec.encode(c) for c in cards)
    frames = codec.feed(stream)
    assert data_of(frames) == norm(framing, cards)
    assert codec.counters.frames == len(cards)
    assert codec.counters.noise_bytes == codec.counters.bad_checksum == codec.counters.overflow == 0
    assert codec.pending() == 0


@pytest.mark.parametrize(("framing", "checksum", "cards"), CASES, ids=IDS)
def test_noise_before_between_and_after(framing: str, checksum: str, cards: list[str]) -> None:
    codec = new_codec(framing, checksum)
    stream = NOISE + b"".join(codec.encode(c) + NOISE for c in cards)
    frames = codec.feed(stream)
    assert data_of(frames) == norm(framing, cards)
    assert codec.counters.noise_bytes == len(NOISE) * (len(cards) + 1)
    assert codec.counters.bad_checksum == 0


@pytest.mark.parametrize(("framing", "checksum", "cards"), CASES, ids=IDS)
def test_noise_inside_a_frame_rejects_only_that_frame(
    framing: str, checksum: str, cards: list[str]
) -> None:
    codec = new_codec(framing, checksum)
    good = codec.encode(cards[0])
    for at in range(1, len(good) - 1):
        c = new_codec(framing, checksum)
        damaged = good[:at] + b"\xff\x00" + good[at:]
        frames = c.feed(damaged + good)
        # No phantom: the damaged frame yields nothing; the next clean frame decodes.
        assert data_of(frames) == norm(framing, cards[:1]), (at, frames)


@pytest.mark.parametrize(("framing", "checksum", "cards"), CASES, ids=IDS)
def test_split_at_every_byte_boundary(framing: str, checksum: str, cards: list[str]) -> None:
    ref = new_codec(framing, checksum)
    stream = NOISE[:3] + b"".join(ref.encode(c) for c in cards[:2])
    want = norm(framing, cards[:2])
    for i in range(len(stream) + 1):
        for j in range(i, len(stream) + 1):
            codec = new_codec(framing, checksum)
            got = data_of(feed_all(codec, [stream[:i], stream[i:j], stream[j:]]))
            assert got == want, (i, j)
    codec = new_codec(framing, checksum)
    assert data_of(feed_all(codec, [bytes([b]) for b in stream])) == want


@pytest.mark.parametrize(("framing", "checksum", "cards"), CASES, ids=IDS)
def test_corrupt_frames_are_rejected(framing: str, checksum: str, cards: list[str]) -> None:
    codec = new_codec(framing, checksum)
    for card in cards:
        assert data_of(codec.feed(codec.corrupt(card))) == []
    # ...and the codec resynchronises on the next good frame.
    assert data_of(codec.feed(codec.encode(cards[0]))) == norm(framing, cards[:1])
    if framing == "em4100" or checksum != "none":
        assert codec.counters.bad_checksum == len(cards)


def test_em4100_datasheet_example_and_case() -> None:
    codec = Em4100Codec()
    assert codec.encode("62E3086CED") == b"\x0262E3086CED08\x03"
    assert data_of(codec.feed(b"\x0262e3086ced08\x03")) == ["62E3086CED"]
    assert data_of(codec.feed(b"\x0262E3086CED09\x03")) == []
    assert codec.counters.bad_checksum == 1


def test_em4100_truncated_frame_resyncs_on_new_stx() -> None:
    codec = Em4100Codec()
    frame = codec.encode("62E3086CED")
    frames = codec.feed(frame[:7] + frame + frame[3:])
    assert data_of(frames) == ["62E3086CED"]
    assert codec.pending() == 0


def test_line_terminators_and_blank_lines() -> None:
    codec = LineCodec()
    frames = codec.feed(b"1234\r\n5678\r9012\n\r3456\n\n\r\n  7890\t\r\n")
    assert data_of(frames) == ["1234", "5678", "9012", "3456", "7890"]
    assert codec.counters.noise_bytes == 0


def test_line_too_short_or_too_long() -> None:
    codec = LineCodec()
    assert data_of(codec.feed(b"12\r\n" + b"9" * 40 + b"\r\n1234\r\n")) == ["1234"]
    assert codec.counters.overflow == 1
    assert codec.counters.noise_bytes == 2 + (40 - 33)


def test_stx_etx_overflow_is_bounded() -> None:
    codec = StxEtxCodec(max_len=16)
    frames = codec.feed(b"\x02" + b"7" * 100)
    assert codec.counters.overflow == 1
    assert codec.pending() <= 16 + 4
    assert data_of(frames + codec.feed(codec.encode("1234"))) == ["1234"]


def test_stx_etx_xor_bcc_that_looks_like_stx() -> None:
    codec = StxEtxCodec(checksum="xor")
    data = "13"  # 0x31 ^ 0x33 == 0x02 == STX
    frame = codec.encode(data)
    assert frame == b"\x0213\x02\x03"
    assert data_of(feed_all(codec, [frame[:3], frame[3:4], frame[4:]])) == [data]


def test_discard_partial_counts_noise() -> None:
    for name in CODECS:
        codec = new_codec(name)
        frame = codec.encode("62E3086CED" if name == "em4100" else "12345678")
        cut = 2 if name == "line" else 1  # CR alone already ends a line
        codec.feed(frame[:-cut])
        assert codec.pending() > 0
        dropped = codec.discard_partial()
        assert dropped is not None and dropped.verdict == "noise"
        assert codec.pending() == 0
        # The tail alone must not form a frame.
        assert data_of(codec.feed(frame[-cut:])) == []


def test_encoders_refuse_what_cannot_be_framed() -> None:
    with pytest.raises(ValueError):
        Em4100Codec().encode("1234")
    with pytest.raises(ValueError):
        LineCodec().encode("12 34")
    with pytest.raises(ValueError):
        StxEtxCodec().encode("\x03")
    with pytest.raises(ValueError):
        new_codec("osdp")


# -- properties -------------------------------------------------------------------------
ALL = [(f, c) for f, c, _ in CASES]
chunks = st.lists(st.binary(max_size=40), max_size=30)
PROP = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize(("framing", "checksum"), ALL, ids=IDS)
@PROP
@given(data=chunks)
def test_no_input_crashes_a_codec(framing: str, checksum: str, data: list[bytes]) -> None:
    codec = new_codec(framing, checksum)
    seen = 0
    fed = 0
    for chunk in data:
        frames = codec.feed(chunk)
        fed += len(chunk)
        seen += sum(len(f.raw) for f in frames)
        assert codec.pending() <= 80  # the buffer is bounded
        for f in frames:
            assert (f.verdict == "ok") == (f.data is not None)
    counters = codec.counters.as_dict()
    assert all(v >= 0 for v in counters.values())
    if framing != "line":  # every byte is accounted for exactly once
        assert seen + codec.pending() == fed


def _cards(framing: str, checksum: str) -> st.SearchStrategy[str]:
    hexchars = "0123456789ABCDEF"
    if framing == "em4100":
        return st.text(alphabet=hexchars, min_size=10, max_size=10)
    if framing == "line":
        return st.text(alphabet=hexchars + "abcdef", min_size=4, max_size=32)
    return st.text(
        alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=64
    )


@pytest.mark.parametrize(("framing", "checksum"), ALL, ids=IDS)
@PROP
@given(data=st.data())
def test_encode_decode_round_trip(framing: str, checksum: str, data: st.DataObject) -> None:
    codec = new_codec(framing, checksum)
    cards = data.draw(st.lists(_cards(framing, checksum), min_size=1, max_size=5))
    noise = data.draw(st.binary(max_size=8).map(lambda b: bytes(x | 0x80 for x in b)))
    stream = b"".join(noise + codec.encode(c) for c in cards)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert data_of(feed_all(codec, pieces)) == norm(framing, cards)
    assert codec.counters.bad_checksum == 0
