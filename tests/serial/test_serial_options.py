"""``parse_options``: defaults, and every error names its TOML key."""

from __future__ import annotations

from typing import Any

import pytest

from drivers.serial_reader.driver import SerialDriver
from drivers.serial_reader.options import Rs485Options
from gateway.config.validate import Fields
from gateway.errors import ConfigIssue


def parse(table: dict[str, Any]) -> tuple[Any, list[str]]:
    issues: list[ConfigIssue] = []
    opts = SerialDriver.parse_options(Fields(table, "terminals[1]", issues))
    return opts, [str(i) for i in issues]


def test_defaults() -> None:
    opts, issues = parse({"port": "/dev/ttyUSB0", "framing": "line"})
    assert issues == []
    assert (opts.baudrate, opts.bytesize, opts.parity, opts.stopbits) == (9600, 8, "none", 1)
    assert (opts.debounce_s, opts.data_format, opts.card_format) == (3.0, "decimal", "decimal")
    assert opts.rs485 is None and opts.wiegand26 is False
    assert parse({"port": "socket://10.0.0.5:4001", "framing": "stx_etx"})[0].data_format == "hex"


def test_contract_example_error() -> None:
    _, issues = parse({"port": "/dev/ttyUSB0", "framing": "line", "baudrate": "9600x"})
    assert issues == ['terminals[1].baudrate: expected one of 1200…115200, got "9600x"']


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"framing": "line"}, "port"),
        ({"port": "/dev/x"}, "framing"),
        ({"port": "/dev/x", "framing": "osdp"}, "framing"),
        ({"port": "/dev/x", "framing": "line", "baudrate": 9601}, "baudrate"),
        ({"port": "/dev/x", "framing": "line", "baudrate": True}, "baudrate"),
        ({"port": "/dev/x", "framing": "line", "parity": "mark"}, "parity"),
        ({"port": "/dev/x", "framing": "line", "stopbits": 1.5}, "stopbits"),
        ({"port": "/dev/x", "framing": "line", "bytesize": 9}, "bytesize"),
        ({"port": "/dev/x", "framing": "line", "checksum": "xor"}, "checksum"),
        ({"port": "/dev/x", "framing": "stx_etx", "checksum": "crc16"}, "checksum"),
        ({"port": "/dev/x", "framing": "em4100", "data_format": "decimal"}, "data_format"),
        ({"port": "/dev/x", "framing": "line", "card_format": "octal"}, "card_format"),
        ({"port": "/dev/x", "framing": "line", "wiegand26": "yes"}, "wiegand26"),
        ({"port": "/dev/x", "framing": "line", "debounce_s": -1}, "debounce_s"),
        ({"port": "/dev/x", "framing": "line", "rs485": "on"}, "rs485"),
        ({"port": "/dev/x", "framing": "line", "rs485": {"rts_on": True}}, "rs485.rts_on"),
    ],
)
def test_errors_name_the_key(table: dict[str, Any], key: str) -> None:
    opts, issues = parse(table)
    assert opts is None
    assert any(i.startswith(f"terminals[1].{key}:") for i in issues), issues


def test_every_error_at_once() -> None:
    _, issues = parse(
        {"port": "", "framing": "line", "baudrate": 1, "parity": "x", "debounce_s": "3"}
    )
    assert [i.split(":")[0] for i in issues] == [
        "terminals[1].port",
        "terminals[1].baudrate",
        "terminals[1].parity",
        "terminals[1].debounce_s",
    ]


def test_rs485_forms() -> None:
    assert (
        parse({"port": "/dev/ttyAMA0", "framing": "line", "rs485": True})[0].rs485 == Rs485Options()
    )
    assert parse({"port": "/dev/ttyAMA0", "framing": "line", "rs485": False})[0].rs485 is None
    opts, _ = parse(
        {
            "port": "/dev/ttyAMA0",
            "framing": "line",
            "rs485": {"rts_level_for_tx": False, "delay_before_tx_s": 0.002},
        }
    )
    assert opts.rs485 == Rs485Options(rts_level_for_tx=False, delay_before_tx_s=0.002)


def test_name_and_driver_are_left_to_the_loader() -> None:
    issues: list[ConfigIssue] = []
    f = Fields(
        {"name": "door", "driver": "serial", "port": "/dev/x", "framing": "line"},
        "terminals[0]",
        issues,
    )
    assert SerialDriver.parse_options(f) is not None
    f.ignore("name", "driver")
    f.done()
    assert issues == []
