"""``gatewayctl doctor`` for a card reader while the daemon is stopped.

The port exists, the service user may open it (mode, group), and it opens exclusively (no
other program holds it). Never raises: a failure is a ``fail`` diagnosis with its fix.
"""

from __future__ import annotations

import os

import serial

from drivers.serial_reader.options import SerialOptions
from gateway.appliance.sysinfo import SERVICE_USER, group_name, service_may_open
from gateway.pipeline.driver import Diagnosis


def advice(o: SerialOptions) -> str:
    return (
        f"reseat the USB adapter and check `ls -l {o.port}` (by-id path, group dialout); "
        "reader powered?"
    )


def diagnose(o: SerialOptions) -> Diagnosis:
    if o.is_url:
        return Diagnosis("skip", f"{o.port} is a network URL: start the daemon to test it")
    if not os.path.exists(o.port):
        return Diagnosis(
            "fail",
            f"serial port missing: {o.port} does not exist",
            "reseat the adapter; `ls -l /dev/serial/by-id/` shows the right path "
            "for [[terminals]] port",
            fault=2,
        )
    st = os.stat(o.port)
    group = group_name(st.st_gid)
    if not service_may_open(st):
        return Diagnosis(
            "fail",
            f"{o.port}: the {SERVICE_USER} user may not open it "
            f"(mode {oct(st.st_mode & 0o777)}, group {group})",
            f"sudo usermod -aG {group} {SERVICE_USER} (then restart the daemon)",
            fault=2,
        )
    try:
        port = serial.Serial(o.port, o.baudrate, timeout=0.1, exclusive=True)
        port.close()
    except (serial.SerialException, OSError) as err:
        locked = "lock" in str(err).lower()
        fix = (
            f"another program holds it: `sudo fuser -v {o.port}`, close it "
            "(miniterm, screen, ModemManager)"
            if locked
            else advice(o)
        )
        return Diagnosis("fail", f"{o.port}: {err}", fix, fault=2)
    return Diagnosis("ok", f"{o.port} present, group {group}, opens (not locked)")
