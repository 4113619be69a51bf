"""Clock care for a ZK terminal: measure its skew, set it only from an NTP-synced Pi.

A terminal keeps naive local time on a coin-cell RTC (notes §5.2): it drifts, and resets to
2000-01-01 when the battery dies. The Pi has no RTC, so its own clock is only trusted for
*setting* the terminal when ``ctx.time_sync`` positively says it is NTP-synchronised; an
unknown sync state (``time_sync is None``) counts as not synced here (PRODUCT.md §7).
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

import structlog

from gateway.pipeline.driver import JSON, DriverContext

log = structlog.get_logger(__name__)


class ClockWatch:
    """Skew bookkeeping for one terminal; ``options`` carries sync_clock / max_clock_skew_s."""

    def __init__(self, options: Any, ctx: DriverContext) -> None:
        self.opts = options
        self.ctx = ctx
        self.skew_s: float | None = None
        self.measured_at: datetime | None = None
        self.unreadable = False
        self.last_sync: dict[str, JSON] | None = None
        self.refused: str | None = None

    def measured(self, terminal: datetime | None, before: datetime, after: datetime) -> None:
        """Record one reading; ``before``/``after`` bracket the request on the Pi's clock."""
        self.measured_at = after
        if terminal is None:
            self.unreadable, self.skew_s = True, None
            return
        self.unreadable = False
        mid = before + (after - before) / 2
        self.skew_s = round((terminal.replace(tzinfo=self.ctx.timezone) - mid).total_seconds(), 1)

    def pi_synced(self) -> bool:
        ts = self.ctx.time_sync
        return ts is not None and ts.synced()

    def off(self) -> bool:
        return self.unreadable or (
            self.skew_s is not None and abs(self.skew_s) > self.opts.max_clock_skew_s
        )

    def punch_clock_ok(self) -> bool:
        """``Punch.clock_synced``: the last measured skew is within bounds (Pi not known off)."""
        return (
            self.skew_s is not None
            and abs(self.skew_s) <= self.opts.max_clock_skew_s
            and self.ctx.clock_synced()
        )

    def maybe_sync(self, zk: Any) -> None:
        if self.opts.sync_clock and self.off():
            self.sync_now(zk, force=False)

    def sync_now(self, zk: Any, *, force: bool) -> dict[str, JSON]:
        """Set the terminal clock to the Pi's local time in ``ctx.timezone``."""
        before = self.skew_s
        if not self.pi_synced():
            self.refused = "the Pi's clock is not NTP-synchronised"
            if not force:
                log.warning("zk_clock_not_set", skew_s=before, reason=self.refused)
            return {"done": False, "refused": self.refused, "skew_s": before}
        self.refused = None
        target = (
            self.ctx.clock.now().astimezone(self.ctx.timezone).replace(tzinfo=None, microsecond=0)
        )
        zk.set_time(target)
        # pyzk's set_time omits CMD_REFRESHDATA, which adrobinoga's spec says makes the new
        # time take effect ("Set Time", sections/terminal.md); a firmware that refuses it
        # has already applied the time.
        with contextlib.suppress(Exception):
            zk.refresh_data()
        t0 = self.ctx.clock.now()
        term = read_terminal_time(zk)
        self.measured(term, t0, self.ctx.clock.now())
        self.last_sync = {
            "at": t0.isoformat(),
            "skew_before_s": before,
            "skew_after_s": self.skew_s,
            "set_to": target.isoformat(),
        }
        log.info("zk_clock_set", **self.last_sync)
        return {"done": True, **self.last_sync}

    def warnings(self) -> list[str]:
        out: list[str] = []
        if self.unreadable:
            out.append("terminal clock holds an impossible date; set it (sync-clock)")
        elif self.off():
            msg = f"terminal clock off by {self.skew_s:+.0f} s"
            if self.refused:
                msg += f"; not corrected: {self.refused}"
            elif not self.opts.sync_clock:
                msg += "; sync_clock is off"
            out.append(msg)
        return out

    def describe(self) -> dict[str, JSON]:
        return {
            "skew_s": self.skew_s,
            "measured_at": self.measured_at.isoformat() if self.measured_at else None,
            "pi_ntp_synced": self.pi_synced(),
            "sync_clock": self.opts.sync_clock,
            "last_sync": self.last_sync,
            "refused": self.refused,
        }


def read_terminal_time(zk: Any) -> datetime | None:
    """pyzk's get_time raises ValueError on an impossible date (fananimi/pyzk#221)."""
    try:
        t = zk.get_time()
    except ValueError:
        return None
    return t if isinstance(t, datetime) else None
