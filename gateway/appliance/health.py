"""The health model: one snapshot of the whole gateway, for the LEDs, MQTT and the CLI.

Built once a second by the supervisor from what each part already knows (runner states,
publisher state, store figures, the Pi's sensors). Faults are derived here and only here, so
the red LED, the ``health`` topic, ``gatewayctl status`` and ``doctor`` always agree.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway import __version__
from gateway.appliance import sysinfo
from gateway.pipeline.driver import Clock, TimeSync
from gateway.pipeline.runner import TerminalState
from gateway.store.db import Store, iso_utc
from gateway.uplink.publisher import Publisher

# PRODUCT.md §5, most severe first.
TERMINAL_UNREACHABLE, SERIAL_MISSING, DISK_LOW, DATABASE, CLOCK, BROKER_REFUSED = 1, 2, 3, 4, 5, 6


@dataclass(frozen=True)
class Fault:
    code: int
    text: str

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "text": self.text}


class HealthModel:
    """Gathers a snapshot; cheap enough to run every second on a Pi 3."""

    def __init__(
        self,
        *,
        gateway_id: str,
        boot_id: str,
        store: Store,
        publisher: Publisher | None,
        terminals: Callable[[], Iterable[TerminalState]],
        time_sync: TimeSync,
        clock: Clock,
        data_dir: str,
        min_free_disk_mb: int,
        store_fault: Callable[[], str | None] = lambda: None,
        link_fault: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.gateway_id = gateway_id
        self.boot_id = boot_id
        self.store = store
        self.publisher = publisher
        self.terminals = terminals
        self.time_sync = time_sync
        self.clock = clock
        self.data_dir = data_dir
        self.min_free_disk_mb = min_free_disk_mb
        self.store_fault = store_fault
        self.link_fault = link_fault  # TLS verdicts (gateway/uplink/tls_watch.py): fault 6
        self.started = time.monotonic()
        self.last: dict[str, Any] = {}

    def disk_low(self) -> bool:
        free = sysinfo.disk_free_bytes(self.data_dir)
        return free is not None and free < self.min_free_disk_mb * 1024 * 1024

    def snapshot(self) -> dict[str, Any]:
        now = self.clock.now()
        faults: list[Fault] = []
        try:
            queue = self.store.figures()
        except Exception as err:  # the store itself is broken: that is fault 4
            queue = {"error": str(err)}
            faults.append(Fault(DATABASE, f"store unreadable: {err}"))
        if (text := self.store_fault()) is not None:
            faults.append(Fault(DATABASE, text))
        terminals: dict[str, Any] = {}
        for t in self.terminals():
            terminals[t.name] = {
                "driver": t.driver,
                "state": t.state,
                "detail": t.detail,
                "since": iso_utc(t.since) if t.since else None,
                "last_punch_at": iso_utc(t.last_punch_at) if t.last_punch_at else None,
                "punches": t.punches,
                "fault": t.fault,  # the LED code of this terminal's trouble (doctor uses it)
                **dict(t.figures),
            }
            if t.state in ("offline", "fault") and t.fault in (
                TERMINAL_UNREACHABLE,
                SERIAL_MISSING,
            ):
                faults.append(Fault(t.fault, f"terminal {t.name}: {t.detail}"))
            elif t.state == "fault":
                faults.append(
                    Fault(t.fault or TERMINAL_UNREACHABLE, f"terminal {t.name}: {t.detail}")
                )
        free = sysinfo.disk_free_bytes(self.data_dir)
        if free is not None and free < self.min_free_disk_mb * 1024 * 1024:
            faults.append(
                Fault(DISK_LOW, f"disk low: {free // 2**20} MB free (< {self.min_free_disk_mb} MB)")
            )
        synced = self.time_sync.synced()
        if not synced:
            faults.append(Fault(CLOCK, "the Pi's clock is not NTP-synchronised"))
        broker: dict[str, Any] = {"connected": False, "detail": "not configured"}
        if self.publisher is not None:
            st = self.publisher.state
            broker = {
                "connected": st.connected,
                "detail": st.detail,
                "for_s": round(time.monotonic() - st.since, 1),
                "inflight": self.publisher.inflight,
                "dead_letters": st.dead_letters,
                "profile": st.profile,  # issue 19: [mqtt] profile and what the broker allows
                "capabilities": st.capabilities,
            }
            if st.refused:
                faults.append(Fault(BROKER_REFUSED, st.refused))
            if (tls := self.link_fault()) is not None:
                faults.append(Fault(BROKER_REFUSED, tls))
        if isinstance(queue.get("dead_lettered"), int) and queue["dead_lettered"] > 0:
            faults.append(
                Fault(
                    BROKER_REFUSED,
                    f"{queue['dead_lettered']} punch(es) refused by the broker (dead letters)",
                )
            )
        throttled = sysinfo.throttled()
        snap = {
            "gateway": self.gateway_id,
            "version": __version__,
            "boot_id": self.boot_id,
            "at": iso_utc(now),
            "uptime_s": round(time.monotonic() - self.started, 1),
            "broker": broker,
            "queue": queue,
            "terminals": terminals,
            "disk": {
                "free_mb": None if free is None else free // 2**20,
                "min_free_mb": self.min_free_disk_mb,
            },
            "cpu_temp_c": sysinfo.cpu_temperature_c(),
            "throttled": throttled.as_dict() if throttled is not None else None,
            "clock_synced": synced,
            "faults": [f.as_dict() for f in sorted(faults, key=lambda f: f.code)],
        }
        self.last = snap
        return snap


def network_mode(snap: Mapping[str, Any]) -> str:
    """The yellow LED: solid when caught up, slow blink while draining, fast when down."""
    if not snap.get("broker", {}).get("connected"):
        return "unreachable"
    return "draining" if snap.get("queue", {}).get("pending", 0) else "connected"


def fault_codes(snap: Mapping[str, Any]) -> set[int]:
    return {int(f["code"]) for f in snap.get("faults", [])}


def one_line(snap: Mapping[str, Any]) -> str:
    """``STATUS=`` for systemd: what ``systemctl status`` shows."""
    terms = snap.get("terminals", {})
    online = sum(1 for t in terms.values() if t.get("state") == "online")
    q = snap.get("queue", {})
    link = "broker ok" if snap.get("broker", {}).get("connected") else "broker down"
    faults = ",".join(str(f["code"]) for f in snap.get("faults", [])) or "none"
    return (
        f"terminals {online}/{len(terms)} online, {link}, pending {q.get('pending', '?')}, "
        f"faults {faults}"
    )
