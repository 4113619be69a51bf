"""``gatewayctl doctor`` for a ZK terminal while the daemon is stopped: one short session.

Connect (timeout at most 5 s), read serial, firmware, record counts and the clock, disconnect.
Never raises: every failure is a ``fail`` diagnosis with the fix a technician follows.
"""

from __future__ import annotations

import contextlib
from datetime import datetime

from drivers.zk_terminal.client import HardenedZK
from drivers.zk_terminal.clock import read_terminal_time
from drivers.zk_terminal.options import ZkOptions
from gateway.pipeline.driver import JSON, Diagnosis, DriverContext

PROBE_TIMEOUT_S = 5.0


def advice(o: ZkOptions) -> str:
    return (
        f"check the terminal's power and network: `ping {o.host}`, cable and switch "
        f"port; {o.transport.upper()} port {o.port} open; comm key = [[terminals]] password"
    )


def diagnose(o: ZkOptions, ctx: DriverContext) -> Diagnosis:
    zk = HardenedZK(
        o.host, o.port, min(o.timeout_s, PROBE_TIMEOUT_S), o.password, o.transport == "udp"
    )
    try:
        zk.connect()
        serial = str(zk.get_serialnumber()).strip()
        firmware = str(zk.get_firmware_version())
        zk.read_sizes()
        when = read_terminal_time(zk)
    except Exception as err:  # pyzk raises bare Exception subclasses of many kinds
        return Diagnosis(
            "fail",
            f"unreachable at {o.transport}://{o.host}:{o.port}: {type(err).__name__}: {err}",
            advice(o),
            fault=1,
        )
    finally:
        with contextlib.suppress(Exception):  # best effort: the socket is closed below anyway
            zk.disconnect()
        zk.close_socket()
    if o.serial_number and serial != o.serial_number:
        return Diagnosis(
            "fail",
            f"{o.host}:{o.port} answers with serial {serial}, not the configured "
            f"serial_number {o.serial_number}: a swapped or re-addressed terminal",
            "find the terminal's new address (its menu: Comm. → Ethernet) or, if the unit "
            "was replaced on purpose, set serial_number to the new serial",
            fault=1,
        )
    figures: dict[str, JSON] = {}
    if when is not None:
        now = datetime.now(ctx.timezone).replace(tzinfo=None)
        figures["clock_skew_s"] = round((when - now).total_seconds())
    cap = getattr(zk, "rec_cap", 0) or 0
    if cap:
        figures.update(log_usage=zk.records / cap, log_records=zk.records, log_capacity=cap)
    return Diagnosis(
        "ok", f"reachable, handshake ok (serial {serial}, firmware {firmware})", figures=figures
    )
