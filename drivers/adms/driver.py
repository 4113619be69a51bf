"""The ``adms`` driver: one push terminal, as the runner sees it (passive, like every driver).

The terminal pushes; the listener puts each upload on this terminal's channel; ``read()``
hands the batch's punches to the runner and, on the *next* ``read()`` (the runner's proof of
commit, ``gateway.pipeline.driver``), acknowledges it, which lets the waiting HTTP request
answer ``OK``. ``close()`` (the commit failed, or shutdown) answers the batch 503 instead:
the terminal sends it again.

Status: online while the terminal has polled within three ``Delay`` periods; otherwise
``read``/``open`` raise ``DriverError`` (fault 1, "terminal unreachable").

Commands leave through the terminal's polls: ``pull`` asks it to re-send its whole log
(``DATA QUERY ATTLOG``), ``sync_clock`` sets its clock (``SET OPTION DateTime=``) only when
the Pi is NTP-synced and ``sync_clock`` is on, and a periodic ``VERIFY SUM ATTLOG`` is
compared with what the store holds for the terminal; a shortfall asks for the last
``resend_days`` again (issue 15). Replies to all of them are answered on the listener's
threads, so the runner thread never waits for the terminal.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import structlog

from drivers.adms import protocol as p
from drivers.adms.hub import HUB, Batch, Hub
from drivers.adms.options import AdmsOptions, parse_options
from gateway.config.defaults import DB_NAME
from gateway.config.validate import Fields
from gateway.errors import DriverError
from gateway.pipeline.driver import JSON, Diagnosis, DriverContext
from gateway.pipeline.punch import Punch, state_name, verify_name

log = structlog.get_logger(__name__)

MAX_BATCH = 5000  # punches per read: a 50 000-line re-upload is committed in ten steps
MAX_SKEW_S = 60.0
AUTO_SYNC_EVERY_S = 3600.0


class AdmsDriver:
    kind = "adms"
    keeps_log = True  # the terminal keeps its log until we answer OK

    def __init__(
        self, name: str, options: AdmsOptions, ctx: DriverContext, hub: Hub | None = None
    ) -> None:
        self.name = name
        self.options = options
        self.ctx = ctx
        self.hub = hub or HUB
        self.ch = self.hub.channel(name, options.serial_number)
        self.ch.delay_s = options.delay_s
        self.ch.may_set_clock = self.may_set_clock
        self.ch.now = ctx.clock.now
        self.ch.build = self._build
        self._handed: Batch | None = None
        self._rest: list[Punch] = []
        self._newest: datetime | None = None
        self._next_recon = 0.0
        self._last_auto_sync = -AUTO_SYNC_EVERY_S
        self._recon_lock = threading.Lock()
        self._recon_reply: int | None = None
        self.reconciliation: dict[str, JSON] = {}

    @staticmethod
    def parse_options(fields: Fields) -> AdmsOptions | None:
        return parse_options(fields)

    # -- clock ---------------------------------------------------------------------------
    def may_set_clock(self) -> bool:
        """Nothing we answer may move the terminal's clock unless this holds (§8)."""
        ts = self.ctx.time_sync
        return self.options.sync_clock and ts is not None and ts.synced()

    def _window(self) -> float:
        return 3.0 * self.options.delay_s + 2.0

    # -- the driver contract -------------------------------------------------------------
    def open(self) -> None:
        ago = self.ch.polled_ago()
        if ago is None or ago > self._window():
            raise DriverError(self._silent(ago), fault=1)
        self.ch.attach()
        self._next_recon = time.monotonic() + min(60.0, self.options.reconcile_interval_s)

    def read(self, timeout: float) -> Sequence[Punch]:
        if self._handed is not None and not self._rest:
            self._handed.finish(True)  # the runner read again: the batch is committed
            self._handed = None
        if self._rest:
            out, self._rest = self._rest[:MAX_BATCH], self._rest[MAX_BATCH:]
            return out
        ago = self.ch.polled_ago()
        if ago is None or ago > self._window():
            raise DriverError(self._silent(ago), fault=1)
        self._housekeeping()
        batch = self.ch.next_batch(timeout)
        if batch is None:
            return []
        self._handed = batch
        out, self._rest = batch.punches[:MAX_BATCH], batch.punches[MAX_BATCH:]
        if not out:
            batch.finish(True)
            self._handed = None
        return out

    def close(self) -> None:
        if self._handed is not None:
            self._handed.finish(False, "not committed")
        self._handed, self._rest = None, []
        self.ch.attached = False

    def probe(self) -> Mapping[str, JSON]:
        if self.ch.attached:
            with contextlib.suppress(ValueError):
                self.ch.queue_command("INFO")
        return {
            "driver": "adms",
            **self.status(),
            "info": dict(self.ch.info),
            "recent_commands": list(self.ch.results),
            "note": "INFO asked: its answer shows in the next probe",
        }

    def status(self) -> Mapping[str, JSON]:
        ago = self.ch.polled_ago()
        warnings = []
        if self.ch.skew_s is not None and abs(self.ch.skew_s) > MAX_SKEW_S:
            warnings.append(f"terminal clock off by about {self.ch.skew_s:+.0f} s")
        return {
            "serial": self.options.serial_number,
            "address": self.ch.address,
            "polled_ago_s": None if ago is None else round(ago, 1),
            "last_seen": self.ch.last_seen_at.isoformat() if self.ch.last_seen_at else None,
            "delay_s": self.options.delay_s,
            "stamp": self.hub.stamp(self.options.serial_number),
            "clock_skew_s": self.ch.skew_s,
            "clock_may_be_set": self.may_set_clock(),
            "firmware": self.ch.info.get("FWVersion") or self.ch.info.get("INFO"),
            "reconciliation": dict(self.reconciliation),
            "warnings": warnings,
            **self.ch.counters,
        }

    def diagnose(self) -> Diagnosis:
        return Diagnosis(
            "skip",
            "push terminal: it connects to the gateway, so only the running daemon sees it",
            self.advice(),
        )

    def advice(self) -> str:
        return (
            f"on the terminal (SN {self.options.serial_number}): Comm. > Cloud Server Setting: "
            "server address = this Pi's IP, port = [adms] listen's port, domain name off; "
            "check allow_networks and the Pi's firewall (docs/drivers-adms.md)"
        )

    # -- actions (run on the runner's thread; they only queue commands) ------------------
    def pull(self) -> Mapping[str, JSON]:
        end = self._local_now() + timedelta(days=1)
        ident = self._queue(p.query_attlog(datetime(2000, 1, 1), end))
        return {
            "queued": ident,
            "note": "the terminal re-sends its whole log after its next poll; "
            "duplicates are ignored",
        }

    def sync_clock(self) -> Mapping[str, JSON]:
        if not self.may_set_clock():
            why = (
                "sync_clock is off for this terminal"
                if not self.options.sync_clock
                else "the Pi's clock is not NTP-synchronised"
            )
            return {"done": False, "refused": why, "skew_s": self.ch.skew_s}
        target = self._local_now()
        ident = self._queue(f"SET OPTION DateTime={p.encode_zk_time(target)}")
        return {"done": "queued", "queued": ident, "set_to": target.isoformat(),
                "skew_before_s": self.ch.skew_s}  # fmt: skip

    # -- helpers -------------------------------------------------------------------------
    def _queue(self, command: str) -> int:
        if not self.ch.attached:
            raise DriverError("terminal offline: it picks commands up when it polls", fault=1)
        try:
            return self.ch.queue_command(command)
        except ValueError as err:
            raise DriverError(str(err), fault=1) from err

    def _local_now(self) -> datetime:
        return (
            self.ctx.clock.now().astimezone(self.ctx.timezone).replace(tzinfo=None, microsecond=0)
        )

    def _silent(self, ago: float | None) -> str:
        if self.hub.listener_error:
            return f"[adms] listener down: {self.hub.listener_error}"
        if ago is None:
            return "the terminal has not polled since the gateway started"
        return f"no poll for {ago:.0f} s (Delay {self.options.delay_s} s)"

    def _build(self, records: list[p.AttRecord]) -> list[Punch]:
        """Records → punches, on a listener thread (a terminal uploads one batch at a time;
        the skew estimate is the only state written here)."""
        sn = self.options.serial_number
        zone = self.ctx.timezone
        skew = self.ch.skew_s
        ok = skew is not None and abs(skew) <= MAX_SKEW_S and self.ctx.clock_synced()
        out = [
            Punch(
                event_id=p.event_id(sn, r),
                terminal=self.name,
                driver=self.kind,
                user_id=r.pin,
                time=r.local.replace(tzinfo=zone),
                state=state_name(r.status),
                verify=verify_name(r.verify),
                terminal_sn=sn,
                state_code=r.status,
                verify_code=r.verify,
                clock_synced=ok,
                extra=_extra(r),
            )
            for r in records
        ]
        self._estimate_skew(records)
        return out

    def _estimate_skew(self, records: list[p.AttRecord]) -> None:
        """A real-time upload (``Realtime=1``: a few records, newer than any before) is sent
        within seconds of the punch, so its time minus ours bounds the terminal's skew."""
        newest = max(r.local for r in records)
        if len(records) > 3 or (self._newest is not None and newest <= self._newest):
            self._newest = max(newest, self._newest or newest)
            return
        self._newest = newest
        self.ch.skew_s = round((newest - self._local_now()).total_seconds(), 1)
        self.ch.skew_at = self.ctx.clock.now()

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if (
            self.ch.skew_s is not None
            and abs(self.ch.skew_s) > MAX_SKEW_S
            and self.may_set_clock()
            and now - self._last_auto_sync >= AUTO_SYNC_EVERY_S
        ):
            self._last_auto_sync = now
            with contextlib.suppress(DriverError):  # a full command queue: next time
                self.sync_clock()
        with self._recon_lock:
            reply, self._recon_reply = self._recon_reply, None
        if reply is not None:
            self._compare(reply)
        if self.options.reconcile_interval_s > 0 and now >= self._next_recon:
            self._next_recon = now + self.options.reconcile_interval_s
            with contextlib.suppress(ValueError):
                self.ch.queue_command("VERIFY SUM ATTLOG", self._on_sum)

    def _on_sum(self, result: p.CommandResult) -> None:
        """On a listener thread: keep the count for the runner thread to compare."""
        for key, value in result.fields.items():
            if key.lower() in ("attlogsum", "attlogcount", "count") and value.strip().isdigit():
                with self._recon_lock:
                    self._recon_reply = int(value)
                return
        self.reconciliation = {"error": f"VERIFY SUM answered {result.ret} without a count"}

    def _compare(self, terminal_count: int) -> None:
        stored = self._stored_count()
        self.reconciliation = {
            "at": self.ctx.clock.now().isoformat(),
            "terminal": terminal_count,
            "stored": stored,
        }
        if stored is not None and terminal_count > stored:
            start = self._local_now() - timedelta(days=self.options.resend_days)
            end = self._local_now() + timedelta(days=1)
            ident = self._queue(p.query_attlog(start, end))
            self.reconciliation["resend_requested"] = ident
            log.warning("adms reconciliation shortfall", terminal=self.name, **self.reconciliation)

    def _stored_count(self) -> int | None:
        """What the store holds from this terminal (a read-only look, like the CLI's)."""
        path = Path(self.ctx.data_dir) / DB_NAME
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
            try:
                (n,) = conn.execute(
                    "SELECT count(*) FROM punches WHERE terminal=?", (self.name,)
                ).fetchone()
            finally:
                conn.close()
        except sqlite3.Error:
            return None
        return int(n)


def _extra(r: p.AttRecord) -> dict[str, JSON]:
    extra: dict[str, JSON] = {}
    if r.workcode and r.workcode != "0":
        extra["workcode"] = r.workcode
    if r.extra and any(x not in ("", "0") for x in r.extra):
        extra["fields"] = list(r.extra)
    if r.dialect != "tab":
        extra["dialect"] = r.dialect
    return extra
