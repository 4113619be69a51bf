"""Who answers at the configured address: the terminal's serial, checked, and its details.

A DHCP change or a replaced unit can put another terminal at a terminal's address (issue
14); with ``serial_number`` configured its log is never mixed in: ``open()`` fails with
fault 1 before any download or live session. The details (firmware, platform, name, and
the options a real terminal answers: ``~OEMVendor``, ``~ProductTime``, ``~PIN2Width``,
``~SSR``) are optional: a firmware that lacks one leaves it empty.
"""

from __future__ import annotations

from typing import Any

from drivers.zk_terminal.options import ZkOptions
from gateway.errors import DriverError

#: Options read on open for ``probe()``.
INFO_OPTIONS = ("~OEMVendor", "~ProductTime", "~PIN2Width", "~SSR")


def identify(zk: Any, name: str, o: ZkOptions) -> tuple[str, dict[str, str]]:
    """(serial, details) of the terminal ``zk`` is connected to; DriverError if it is not
    the configured one."""
    serial = str(zk.get_serialnumber()).strip()
    if not serial:
        raise DriverError(f"{name}: terminal reported an empty serial number", fault=1)
    if o.serial_number and serial != o.serial_number:
        raise DriverError(
            f"{name}: the terminal at {o.host}:{o.port} answers with serial {serial}, not "
            f"the configured serial_number {o.serial_number} (swapped or re-addressed "
            "terminal); its punches are not read",
            fault=1,
        )
    info = {
        "serial": serial,
        "firmware": _safe(zk.get_firmware_version),
        "platform": _safe(zk.get_platform),
        "device_name": _safe(zk.get_device_name),
        **{k: _safe(lambda k=k: zk.option(k)) for k in INFO_OPTIONS},
    }
    return serial, info


def _safe(fn: Any) -> str:
    try:
        return str(fn())
    except Exception:  # optional details: a firmware that lacks one must not fail open()
        return ""
