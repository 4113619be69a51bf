"""``status()`` and ``probe()`` of the ZK driver: its figures, as JSON (docs/drivers-zk.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from gateway.pipeline.driver import JSON

if TYPE_CHECKING:
    from drivers.zk_terminal.driver import ZkDriver

USAGE_WARN, USAGE_FAULT = 0.80, 0.95


def status(d: ZkDriver) -> Mapping[str, JSON]:
    """Cheap figures: serial, clock, log usage, warnings, ``fault`` when the log is full."""
    s = d.sizes
    usage = (s.records / s.rec_cap) if s and s.rec_cap > 0 else None
    warnings = list(d._warnings) + d.clock.warnings()
    if d._live_warning:
        warnings.append(d._live_warning)
    if d._bad:
        warnings.append(f"{len(d._bad)} unreadable record(s) skipped; see probe")
    out: dict[str, JSON] = {
        "serial": d.serial,
        "firmware": d.info.get("firmware"),
        "connected": d._zk is not None,
        "clock_skew_s": d.clock.skew_s,
        "log_records": s.records if s else None,
        "log_capacity": s.rec_cap if s else None,
        "log_usage": round(usage, 4) if usage is not None else None,
        "warnings": warnings,
        "last_reconcile": d.last_reconcile.isoformat() if d.last_reconcile else None,
        "last_check": d.last_check.isoformat() if d.last_check else None,
        "bad_records": len(d._bad),
        "suspect_records": len(d._suspect),
    }
    if usage is not None and usage > USAGE_WARN:
        msg = f"terminal log {usage:.0%} full ({s.records}/{s.rec_cap} records)" if s else ""
        if usage > USAGE_FAULT or (s is not None and s.rec_av <= 0):
            out["fault"] = (
                msg + ": it will soon refuse or overwrite punches; archive "
                "and clear it with the vendor tool after the gateway has pulled it"
            )
        else:
            warnings.append(msg)
    return out


def probe(d: ZkDriver) -> Mapping[str, JSON]:
    """``status()`` plus every detail a technician may need."""
    s = d.sizes
    out: dict[str, JSON] = dict(d.status())
    out.update(
        {
            "host": d.opts.host,
            "port": d.opts.port,
            "transport": d.opts.transport,
            **{k: v for k, v in d.info.items() if k != "serial"},
            "record_size": d.record_size,
            "sizes": None if s is None else {k: getattr(s, k) for k in s.__dataclass_fields__},
            "live": d._live is not None,
            "last_download": dict(d.last_download),
            "clock": d.clock.describe(),
            "issues": list(d._issues),
            "frames": d._zk.trace() if d._zk is not None else [],
            "light_touch": {
                "polls": d._touch.polls,
                "downloads": d._touch.downloads,
                "last_check": d._touch.last_reason,
                "full_download_interval_s": d.opts.full_download_interval_s,
            },
            "user_table": {
                "reads": d._slots.reads,
                "slots": len(d._slots.table.pins) if d._slots.table else None,
            },
        }
    )
    return out
