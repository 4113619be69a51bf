"""The sans-IO iclock parser: real captures, dialects, bad lines, and no input that raises."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.adms import protocol as p
from tests.adms import fixtures as fx

KOLKATA = ZoneInfo("Asia/Kolkata")
SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_field_capture_attlog_line_parses_to_its_fields():
    parsed = p.parse_attlog(fx.FIELD_ATTLOG_BODY, KOLKATA)
    assert parsed.bad == []
    (rec,) = parsed.records
    assert (rec.pin, rec.local, rec.status, rec.verify) == (
        "9001", datetime(2026, 7, 28, 22, 40, 21), 1, 15)
    assert rec.workcode == "0" and rec.extra == ("0",) * 5
    # The capture's note: the server logged 17:10:21 UTC, the device said 22:40:21 local.
    assert rec.local.replace(tzinfo=KOLKATA).astimezone(UTC).strftime("%H:%M:%S") == "17:10:21"
    assert p.event_id("NCD8252500406", rec) == "adms-NCD8252500406-9001-20260728T224021-1-15"


def test_blank_fields_and_kv_dialect_and_epoch_dialect():
    (rec,) = p.parse_attlog(fx.BLANK_FIELDS_LINE, SHANGHAI).records
    assert (rec.pin, rec.status, rec.verify, rec.workcode) == ("2", 1, 15, "")
    assert rec.extra == ("0", "0", "", "", "43")
    (kv,) = p.parse_attlog(fx.KV_LINE, SHANGHAI).records
    assert (kv.pin, kv.local, kv.status, kv.verify, kv.dialect) == (
        "1001", datetime(2025, 9, 2, 14, 32, 11), 0, 1, "kv")
    epoch = int(datetime(2025, 9, 2, 14, 32, 11, tzinfo=SHANGHAI).timestamp())
    (ep,) = p.parse_attlog(f"1001\t{epoch}\t0\t1\n".encode(), SHANGHAI).records
    assert ep.local == kv.local and ep.dialect == "epoch"
    # The same punch in three dialects is one event: re-uploads collapse whatever the firmware.
    tab = p.parse_attlog(b"1001\t2025-09-02 14:32:11\t0\t1\n", SHANGHAI).records[0]
    assert p.event_id("SN1", kv) == p.event_id("SN1", ep) == p.event_id("SN1", tab)


def test_event_id_depends_on_content_only():
    a = p.parse_attlog(b"7\t2026-01-02 08:00:00\t0\t1\n", SHANGHAI).records[0]
    b = p.parse_attlog(b"7\t2026-01-02 08:00:00\t1\t1\n", SHANGHAI).records[0]
    c = p.parse_attlog(b"7\t2026-01-02 08:00:00\t0\t15\n", SHANGHAI).records[0]
    ids = {p.event_id("SN", r) for r in (a, b, c)}
    assert len(ids) == 3
    assert p.event_id("SN", a) != p.event_id("SN2", a)
    odd = p.parse_attlog(b"a/b c\t2026-01-02 08:00:00\t0\t1\n", SHANGHAI).records[0]
    assert "/" not in p.event_id("SN", odd).split("-", 2)[2] and odd.pin == "a/b c"


def test_bad_lines_are_reported_and_good_lines_kept():
    body = (b"1\t2026-01-02 08:00:00\t0\t1\n"
            b"garbage\n"
            b"2\t2026-13-45 08:00:00\t0\t1\n"
            b"3\t1999-12-31 23:59:59\t0\t1\n"
            b"4\t2026-01-02 08:00:00\tx\t1\n"
            b"\t2026-01-02 08:00:00\t0\t1\n"
            + b"9" * 40 + b"\t2026-01-02 08:00:00\t0\t1\n"
            b"\xff\xfe\x00\x01\n"
            b"\r\n"
            b"5\t2026-01-02 08:00:01\t0\t1\r\n")
    parsed = p.parse_attlog(body, SHANGHAI)
    assert [r.pin for r in parsed.records] == ["1", "5"]
    assert [b.lineno for b in parsed.bad] == [2, 3, 4, 5, 6, 7, 8]
    assert all(b.reason for b in parsed.bad)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_no_body_raises(body):
    parsed = p.parse_attlog(body, SHANGHAI)
    for r in parsed.records:
        assert 2000 <= r.local.year < 2100 and 0 < len(r.pin) <= p.MAX_PIN
        assert len(p.event_id("SN", r)) <= 200  # the schema's bound
    p.parse_devicecmd(body)
    p.parse_kv_lines(body)
    p.parse_commands(body)


def test_devicecmd_batched_and_multiline_captures():
    res = p.parse_devicecmd(fx.V5L_BATCHED)
    assert [(r.id, r.ret, r.cmd) for r in res] == [(1, 0, "DATA"), (2, 0, "DATA"), (3, 0, "CHECK")]
    (shell,) = p.parse_devicecmd(fx.V5L_MULTILINE)
    assert (shell.id, shell.ret, shell.fields["Content"]) == (
        32, 0, "Tue Mar 24 16:12:26 GMT 2026")
    (one,) = p.parse_devicecmd(fx.FIELD_DEVICECMD)
    assert (one.id, one.ret, one.cmd) == (1, 0, "DATA")
    (s,) = p.parse_devicecmd(b"ID=9&Return=0&CMD=VERIFY SUM&AttlogSum=12")
    assert s.fields["AttlogSum"] == "12"


def test_commands_round_trip_and_shell_is_recognised():
    wire = p.commands_reply([(1, "INFO"), (2, "CHECK")])
    assert wire == fx.V5L_COMMANDS
    assert p.parse_commands(wire) == [(1, "INFO"), (2, "CHECK")]
    assert p.commands_reply([]) == b"OK"
    assert p.is_shell("Shell date") and p.is_shell("SHELL rm -rf /") and not p.is_shell("INFO")
    cmd = p.query_attlog(datetime(2026, 1, 1), datetime(2026, 1, 2, 12, 0))
    assert cmd == "DATA QUERY ATTLOG StartTime=2026-01-01 00:00:00\tEndTime=2026-01-02 12:00:00"


def test_handshake_answer_and_zone_option():
    body = p.options_reply("CEZU202360241", {"ATTLOGStamp": 0, "Delay": 10})
    assert body == b"GET OPTION FROM: CEZU202360241\nATTLOGStamp=0\nDelay=10\n"
    at = datetime(2026, 1, 15, tzinfo=UTC)
    assert p.timezone_option(SHANGHAI, at) == 8
    assert p.timezone_option(KOLKATA, at) is None  # 5.5 would be read as 5 (half-hour trap)
    assert p.timezone_option(ZoneInfo("America/New_York"), at) == -5
    assert p.timezone_option(ZoneInfo("America/New_York"), datetime(2026, 7, 1, tzinfo=UTC)) == -4


def test_zk_time_encoding_round_trips():
    t = datetime(2026, 11, 23, 8, 59, 12)
    assert p.decode_zk_time(p.encode_zk_time(t)) == t
    # pyzk's __encode_time for 2000-01-01 00:00:00 is 0
    assert p.encode_zk_time(datetime(2000, 1, 1)) == 0


def test_serial_numbers_are_checked():
    assert p.valid_sn("CJDE212460019") and p.valid_sn("NCD8252500406")
    assert not p.valid_sn("") and not p.valid_sn(None) and not p.valid_sn("a b")
    assert not p.valid_sn("x" * 65) and not p.valid_sn("../etc")
