"""Helpers for the serial-reader tests (a uniquely named module: several test directories
have a ``conftest``, so tests must not ``import conftest``)."""

from __future__ import annotations

import time
from typing import Any
from zoneinfo import ZoneInfo

from drivers.serial_reader.driver import SerialDriver
from drivers.serial_reader.options import SerialOptions
from gateway.config.validate import Fields
from gateway.errors import ConfigIssue, DriverError
from gateway.pipeline.punch import Punch

TZ = ZoneInfo("Asia/Shanghai")


def options(table: dict[str, Any]) -> SerialOptions:
    issues: list[ConfigIssue] = []
    opts = SerialDriver.parse_options(Fields(table, "terminals[0]", issues))
    assert not issues, issues
    assert opts is not None
    return opts


def read_until(
    drv: SerialDriver, count: int, deadline_s: float = 20.0, timeout: float = 0.1
) -> list[Punch]:
    """Read until ``count`` punches arrived (or the generous deadline passed)."""
    got: list[Punch] = []
    end = time.monotonic() + deadline_s
    while len(got) < count and time.monotonic() < end:
        got += drv.read(timeout)
    return got


def read_until_error(
    drv: SerialDriver, deadline_s: float = 20.0
) -> tuple[list[Punch], DriverError]:
    got: list[Punch] = []
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            got += drv.read(0.1)
        except DriverError as err:
            return got, err
    raise AssertionError("the driver never reported the lost port")


def open_with_retry(drv: SerialDriver, deadline_s: float = 20.0) -> int:
    """What the runner does (minus its backoff policy): reopen until it works."""
    failures = 0
    end = time.monotonic() + deadline_s
    while True:
        try:
            drv.open()
            return failures
        except DriverError as err:
            assert err.fault == 2
            failures += 1
            if time.monotonic() > end:
                raise
            time.sleep(0.05)
