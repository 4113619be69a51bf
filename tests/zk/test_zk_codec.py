"""Codec and record-parser tests: vectors from real devices, round trips, no-crash properties."""

from __future__ import annotations

import struct
from datetime import datetime

from hypothesis import given, settings
from hypothesis import strategies as st
from zk.base import make_commkey as pyzk_commkey

from drivers.zk_terminal import codec as c
from drivers.zk_terminal.records import (
    encode_event,
    encode_record,
    open_attlog,
    parse_event,
)

dates = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31, 23, 59, 59))


def test_checksum_vectors_from_real_frames() -> None:
    # pyzk test.py test_tcp_connect (client CONNECT, device ACK with session 0xfb2f)
    assert c.encode_tcp(c.CMD_CONNECT, 0, 0) == bytes.fromhex("5050827d08000000e80317fc00000000")
    assert c.encode_tcp(c.CMD_ACK_OK, 0xFB2F, 0) == bytes.fromhex(
        "5050827d08000000d007fffc2ffb0000"
    )
    # adrobinoga protocol.md vector: d0070000f38d0a0009 -> 0x6a29
    assert c.checksum(bytes.fromhex("d0070000f38d0a0009")) == 0x6A29


def test_commkey_vectors_and_pyzk_agreement() -> None:
    assert c.make_commkey(12, 0x45CF) == pyzk_commkey(12, 0x45CF)
    for key in (0, 1, 45, 123456, 999999):
        for sess in (0, 1, 0xFB2F, 0xFFFF):
            assert c.make_commkey(key, sess) == pyzk_commkey(key, sess)


@given(
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.binary(max_size=300),
    st.binary(max_size=40),
    st.lists(st.integers(1, 400)),
)
@settings(max_examples=200, deadline=None)
def test_frames_round_trip_through_garbage_and_splits(
    cmd: int, sess: int, reply: int, payload: bytes, junk: bytes, cuts: list[int]
) -> None:
    frame = c.encode_tcp(cmd, sess, reply, payload)
    stream = junk.replace(c.MAGIC[:1], b"") + frame + frame
    dec = c.FrameDecoder()
    got: list[c.Frame] = []
    pos = 0
    for n in [*cuts, len(stream)]:
        got += dec.feed(stream[pos : pos + n])
        pos += n
    got += dec.feed(stream[pos:])
    assert [(f.cmd, f.session, f.reply, f.payload, f.checksum_ok) for f in got] == [
        (cmd, sess, reply, payload, True)
    ] * 2


@given(st.lists(st.binary(max_size=200), max_size=20))
@settings(max_examples=300, deadline=None)
def test_frame_decoder_never_raises(chunks: list[bytes]) -> None:
    dec = c.FrameDecoder(max_frame=4096)
    for ch in chunks:
        for f in dec.feed(ch):
            assert isinstance(f, c.Frame)
        dec.feed(c.MAGIC + ch)


@given(st.binary(max_size=2000), st.none() | st.integers(0, 200))
@settings(max_examples=300, deadline=None)
def test_record_parser_never_raises(data: bytes, hint: int | None) -> None:
    log = open_attlog(data, hint)
    recs, issues = log.records()
    assert len(recs) + sum(1 for i in issues if i.index >= 0 and i.skipped) <= log.count + 1
    parse_event(data)


@given(dates)
def test_time_codecs_round_trip(t: datetime) -> None:
    t = t.replace(microsecond=0)
    assert c.decode_time(c.encode_time(t)) == t
    assert c.decode_timehex(c.encode_timehex(t)) == t


def test_impossible_dates_decode_to_none() -> None:
    assert c.decode_time(c.encode_time_fields(2025, 2, 30, 8)) is None
    assert c.decode_time(0xFFFFFFFF) is None
    assert c.decode_timehex(bytes((25, 2, 30, 8, 0, 0))) is None


def test_free_sizes_round_trip() -> None:
    fs = c.FreeSizes(
        users=7,
        fingers=6,
        records=605,
        fingers_cap=3000,
        users_cap=10000,
        rec_cap=100000,
        rec_av=99395,
    )
    assert c.parse_free_sizes(fs.encode()) == fs
    assert c.parse_free_sizes(b"\0" * 79) is None


def _log(rs: int, rows: list[bytes]) -> bytes:
    body = b"".join(rows)
    return struct.pack("<I", len(body)) + body


def test_tolerant_parser_keeps_good_records_around_bad_ones() -> None:
    for rs in (8, 16, 40, 49):
        good = c.encode_time(datetime(2026, 11, 23, 8, 59, 12))
        # 8-byte records hold the user's slot, not the PIN (issue 14): slot = the number
        # here; their verify method is a 2-bit code (2 = card, records.BW_VERIFY).
        card = 2 if rs == 8 else 4
        rows = [
            encode_record(rs, "1001", good, 0, 1, 1001),
            encode_record(rs, "1002", c.encode_time_fields(2025, 2, 30, 8), 1, 1, 1002),
            b"\xff" * rs,
            encode_record(rs, "1003", c.encode_time(datetime(2000, 1, 1, 0, 5)), 0, 1, 1003),
            encode_record(rs, "1004", good, 1, card, 1004),
        ]
        log = open_attlog(_log(rs, rows), 5)
        assert log.record_size == rs
        recs, issues = log.records()
        assert [r.user_id for r in recs] == ["1001", "1003", "1004"]
        assert recs[1].suspect == "clock_reset"
        kinds = {(i.index, i.kind) for i in issues}
        assert kinds == {(1, "invalid_date"), (2, "corrupt"), (3, "suspect_time")}
        assert next(i for i in issues if i.index == 2).raw_hex == "ff" * rs
        # state/verify meaning follows the layout (notes §1.7)
        assert (recs[2].state, recs[2].verify) == (1, card)


def test_record_size_survives_a_punch_between_sizes_and_download() -> None:
    t = c.encode_time(datetime(2026, 1, 2, 3, 4, 5))
    rows = [encode_record(16, str(1000 + i), t, 0, 1) for i in range(3)]
    # read_sizes said 2 records, the download holds 3 (48 bytes): 48 // 2 = 24 is no layout
    log = open_attlog(_log(16, rows), 2)
    assert log.record_size == 16 and log.count == 3


def test_truncated_download_is_reported() -> None:
    t = c.encode_time(datetime(2026, 1, 2, 3, 4, 5))
    data = _log(40, [encode_record(40, "7", t, 0, 1)] * 3)[:-10]
    log = open_attlog(data, 3)
    recs, _ = log.records()
    assert len(recs) == 2
    assert {i.kind for i in log.issues} >= {"truncated", "trailing"}


@given(
    st.sampled_from([10, 12, 32, 36, 37, 52]),
    st.integers(1, 65535),
    dates,
    st.integers(0, 5),
    st.sampled_from([0, 1, 4, 15]),
)
def test_live_events_round_trip(size: int, uid: int, t: datetime, state: int, verify: int) -> None:
    t = t.replace(microsecond=0)
    events, problems = parse_event(encode_event(size, str(uid), t, state, verify, uid))
    assert not problems
    got = [(e.user_id, e.time, e.state, e.verify) for e in events]
    assert got == [(str(uid), t, state, verify)]


def test_user_table_layouts_and_a_short_read() -> None:
    import pytest

    from drivers.zk_terminal.records import encode_user
    from drivers.zk_terminal.users import parse_users

    for size in (28, 72):
        body = encode_user(size, 7, "1001", "Ann") + encode_user(size, 9, "2002", "Bob")
        t = parse_users(struct.pack("<I", len(body)) + body, 2)
        assert (t.pin(7), t.pin(9), t.pin(8), t.record_size, t.complete) == (
            "1001", "2002", None, size, True
        )
        assert not parse_users(struct.pack("<I", len(body)) + body, 3).complete
    with pytest.raises(ValueError):
        parse_users(struct.pack("<I", 30) + bytes(30), 1)
    assert parse_users(b"", 0).pins == {}
