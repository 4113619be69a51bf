"""The serial driver over real ptys and TCP (pyserial 3.5, no mocks)."""

from __future__ import annotations

import errno
import os
import time
from datetime import UTC, datetime

import pytest
import serial
from serial_helpers import TZ, open_with_retry, read_until, read_until_error

from drivers.serial_reader.sim import ManualClock
from gateway.errors import DriverError
from gateway.pipeline.driver import Driver

FRAMINGS = [
    ("em4100", "none", ["0100886CAB", "62E3086CED"], [str(0x00886CAB), str(0xE3086CED)]),
    ("line", "none", ["0008921324", "0000123478"], ["8921324", "123478"]),
    ("stx_etx", "xor", ["01E256", "7BB26E"], ["123478", str(0x7BB26E)]),
    ("stx_etx", "xor_hex", ["01E256"], ["123478"]),
    ("stx_etx", "none", ["01E256"], ["123478"]),
]


@pytest.mark.parametrize(("framing", "checksum", "cards", "ids"), FRAMINGS)
def test_swipes_become_punches(make_sim, make_driver, clock, framing, checksum, cards, ids):
    sim = make_sim(framing, checksum)
    extra = {"checksum": checksum} if framing == "stx_etx" else {}
    drv = make_driver(sim.path, framing, clock=clock, **extra)
    assert isinstance(drv, Driver)
    drv.open()
    for card in cards:
        sim.noise(7)
        assert sim.swipe(card)
    punches = read_until(drv, len(cards))
    assert [p.user_id for p in punches] == ids
    for p in punches:
        assert p.event_id.startswith("serial-") and len(p.event_id) == len("serial-") + 36
        assert p.terminal == "door" and p.driver == "serial"
        assert p.state == "unknown" and p.verify == "card"
        assert p.time == clock.now() and p.time.utcoffset() == TZ.utcoffset(
            p.time.replace(tzinfo=None)
        )
        assert p.clock_synced is True
    assert [p.event_id for p in punches] == sorted(p.event_id for p in punches)  # UUIDv7
    st = drv.status()
    assert st["frames"] == len(cards) and st["noise_bytes"] == 7 * len(cards)
    assert st["port_state"] == "open"


def test_noise_split_and_bad_frames_give_no_phantom(make_sim, make_driver):
    sim = make_sim("em4100")
    drv = make_driver(sim.path, "em4100", debounce_s=0)
    drv.open()
    card = "0100886CAB"
    for at in range(1, 14):
        sim.bad_checksum(card)
        sim.noise(5)
        sim.split(card, at, pause=0.02)
    punches = read_until(drv, 13)
    assert [p.user_id for p in punches] == [str(0x00886CAB)] * 13
    assert drv.read(0.2) == []
    st = drv.status()
    assert st["bad_checksum"] == 13 and st["frames"] == 13 and st["noise_bytes"] == 65
    frames = drv.probe()["frames"]
    assert {f["verdict"] for f in frames} == {"ok", "bad_checksum", "noise"}
    assert frames[-1]["hex"].startswith("02 30 31")


def test_held_card_gives_one_punch_per_debounce_window(make_sim, make_driver, clock):
    sim = make_sim("em4100")
    drv = make_driver(sim.path, "em4100", clock=clock, debounce_s=3)
    drv.open()
    punches = []
    sent = 0
    for i in range(200):  # 10 s of a card left on the module, a frame every 50 ms
        sim.swipe("0100886CAB")
        sent += 1
        if i == 100:
            clock.jump_wall(-3600)  # an NTP step must not reopen the window
            sim.swipe("62E3086CED")  # another card is not debounced by the first
            sent += 1
        end = time.monotonic() + 20
        while drv.status()["frames"] < sent and time.monotonic() < end:
            punches += drv.read(0.05)
        clock.advance(0.05)
    users = [p.user_id for p in punches]
    assert users.count(str(0x00886CAB)) == 4  # t = 0, 3, 6, 9
    assert users.count(str(0xE3086CED)) == 1
    assert drv.status()["debounced"] == 200 - 4


def test_held_card_real_time(make_sim, make_driver):
    sim = make_sim("em4100")
    drv = make_driver(sim.path, "em4100", debounce_s=30)
    drv.open()
    sent = sim.hold("0100886CAB", 0.5, every=0.05)
    punches = read_until(drv, 2, deadline_s=1.5)
    assert len(punches) == 1
    assert drv.status()["debounced"] == sent - 1


def test_unplug_and_replug_on_a_stable_path(make_sim, make_driver):
    sim = make_sim("em4100", linked=True)
    drv = make_driver(sim.path, "em4100", debounce_s=0)
    drv.open()
    sim.swipe("0100886CAB")
    assert len(read_until(drv, 1)) == 1
    sim.unplug()
    _, err = read_until_error(drv)
    assert err.fault == 2 and "serial port missing" in str(err) and sim.path in str(err)
    assert drv.status()["port_state"] == "missing"
    with pytest.raises(DriverError, match="does not exist") as info:
        drv.open()
    assert info.value.fault == 2
    sim.replug()
    open_with_retry(drv)
    cards = [f"01{n:08X}" for n in range(25)]
    for card in cards:
        sim.swipe(card)
    punches = read_until(drv, len(cards))
    assert [p.user_id for p in punches] == [str(n) for n in range(25)]
    assert drv.status()["drops"] == 1 and drv.status()["opens"] == 2


def test_frames_decoded_before_the_port_dies_are_returned_first(make_sim, make_driver):
    sim = make_sim("em4100", transport="tcp")
    drv = make_driver(sim.path, "em4100", debounce_s=0)
    drv.open()
    assert sim.wait_connected()
    sim.swipe("0100886CAB")
    sim.swipe("62E3086CED")
    sim.unplug()  # FIN right behind the frames
    punches, err = read_until_error(drv)
    assert [p.user_id for p in punches] == [str(0x00886CAB), str(0xE3086CED)]
    assert err.fault == 2
    drv.close()
    with pytest.raises(DriverError, match="refused") as info:
        drv.open()
    assert info.value.fault == 2
    sim.replug()
    open_with_retry(drv)
    assert sim.wait_connected()
    sim.swipe("0000000001")
    assert [p.user_id for p in read_until(drv, 1)] == ["1"]


def test_partial_frame_before_a_long_silence_is_dropped(make_sim, make_driver, clock):
    sim = make_sim("line")
    drv = make_driver(sim.path, "line", clock=clock, debounce_s=0)
    drv.open()
    sim.write(b"98")  # a reader cut off mid-frame
    while drv.status()["frames"] == 0 and not drv.read(0.1):
        if drv._codec.pending():
            break
    clock.advance(5)
    sim.write(b"1234\r\n")
    punches = read_until(drv, 1)
    assert [p.user_id for p in punches] == ["1234"]  # not the phantom "981234"


def test_open_errors_are_clear(make_sim, make_driver, tmp_path):
    missing = make_driver(str(tmp_path / "ttyUSB9"))
    with pytest.raises(DriverError, match="serial port missing") as info:
        missing.open()
    assert info.value.fault == 2
    assert missing.status()["port_state"] == "missing"
    assert missing.probe()["path"]["exists"] is False

    sim = make_sim("em4100")
    first = make_driver(sim.path)
    first.open()
    second = make_driver(sim.path)
    with pytest.raises(DriverError, match="locked by another process") as info:
        second.open()
    assert info.value.fault == 2

    denied = serial.SerialException(
        errno.EACCES, "could not open port /dev/ttyUSB0: [Errno 13] Permission denied"
    )
    assert "dialout" in second._open_message(denied)


def test_rs485_on_a_pty_is_a_warning_not_a_crash(make_sim, make_driver):
    sim = make_sim("em4100")
    drv = make_driver(
        sim.path, "em4100", rs485={"rts_level_for_tx": True, "delay_before_tx_s": 0.001}
    )
    drv.open()
    assert any("rs485" in w for w in drv.status()["warnings"])
    sim.swipe("0100886CAB")
    assert len(read_until(drv, 1)) == 1


def test_probe_and_status_before_open_and_after_close(make_sim, make_driver):
    sim = make_sim("em4100")
    drv = make_driver(sim.path, "em4100")
    assert drv.status()["port_state"] == "closed"
    probe = drv.probe()
    assert probe["path"]["exists"] is True and probe["path"]["mode"].startswith("c")
    assert probe["settings"]["baudrate"] == 9600 and probe["frames"] == []
    drv.open()
    drv.close()
    drv.close()  # idempotent
    with pytest.raises(DriverError):
        drv.read(0.1)


def test_clock_not_synced_is_carried(make_sim):
    from serial_helpers import options

    from drivers.serial_reader.driver import SerialDriver
    from gateway.pipeline.driver import DriverContext

    class Unsynced:
        def synced(self) -> bool:
            return False

    sim = make_sim("em4100")
    clock = ManualClock(datetime(2000, 1, 1, tzinfo=UTC))
    ctx = DriverContext("gw", TZ, clock=clock, time_sync=Unsynced())
    drv = SerialDriver("door", options({"port": sim.path, "framing": "em4100"}), ctx)
    try:
        drv.open()
        sim.swipe("0100886CAB")
        (p,) = read_until(drv, 1)
        assert p.clock_synced is False and p.time.year == 2000
        assert p.to_record()["time"] == "2000-01-01T08:00:00+08:00"
    finally:
        drv.close()


def test_loop_url_works(make_driver):
    drv = make_driver("loop://", "line", debounce_s=0)
    drv.open()
    drv._port.write(b"12345678\r\n")
    assert [p.user_id for p in read_until(drv, 1)] == ["12345678"]
    assert not os.path.exists("loop://")


def test_punch_record_matches_the_schema(make_sim, make_driver):
    import json
    from pathlib import Path

    import jsonschema

    schema = json.loads(
        (Path(__file__).resolve().parents[2] / "docs/schema/punch.schema.json").read_text()
    )
    sim = make_sim("em4100")
    drv = make_driver(sim.path, "em4100")
    drv.open()
    sim.swipe("62E3086CED")
    (p,) = read_until(drv, 1)
    record = {**p.to_record(), "seq": 1, "received_at": "2026-11-23T00:59:13.204Z"}
    jsonschema.validate(record, schema)
    assert record["raw"] == {"card_raw": "62E3086CED"} and record["user_id"] == "3808980205"
