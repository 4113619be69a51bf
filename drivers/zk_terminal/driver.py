"""The ZK terminal driver: reconcile the terminal's full log, take live events in between,
watch its clock and its log capacity. Behaviour and choices: docs/drivers-zk.md.

Passive, like every driver (gateway/pipeline/driver.py): blocking calls with timeouts, no threads,
no retries of its own beyond a bounded re-download; a broken link raises
``DriverError(fault=1)`` and the runner closes, backs off and reopens — and every reopen
reconciles the whole log again, so nothing a live event missed stays missing.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import structlog

from drivers.zk_terminal.client import HardenedZK
from drivers.zk_terminal.clock import ClockWatch, read_terminal_time
from drivers.zk_terminal.codec import FreeSizes
from drivers.zk_terminal.live import LiveError, LiveLink
from drivers.zk_terminal.options import ZkOptions, parse_options
from drivers.zk_terminal.punches import make_punch
from drivers.zk_terminal.reconcile import Reconciler, download
from drivers.zk_terminal.records import AttRecord, LiveEvent, RecordIssue
from gateway.config.validate import Fields
from gateway.errors import DriverError
from gateway.pipeline.driver import JSON, Diagnosis, DriverContext
from gateway.pipeline.punch import Punch

log = structlog.get_logger(__name__)
BATCH = 5000
ISSUES_KEPT = 50
USAGE_WARN, USAGE_FAULT = 0.80, 0.95


class ZkDriver:
    """A ZKTeco "standalone SDK" terminal on TCP/UDP 4370, through pyzk."""

    kind = "zk"
    keeps_log = True

    def __init__(self, name: str, options: ZkOptions, ctx: DriverContext) -> None:
        self.name = name
        self.opts = options
        self.ctx = ctx
        self._zk: Any = None
        self._live: Any = None
        self._rec = Reconciler(BATCH)
        self.clock = ClockWatch(options, ctx)
        self.serial: str | None = None
        self.info: dict[str, str] = {}
        self.sizes: FreeSizes | None = None
        self.record_size: int | None = None
        self._issues: deque[dict[str, Any]] = deque(maxlen=ISSUES_KEPT)
        self._bad: set[tuple[int, str]] = set()
        self._suspect: set[tuple[int, str]] = set()
        self._warnings: list[str] = []
        self._live_warning: str | None = None
        self.last_reconcile: datetime | None = None
        self.last_download: dict[str, Any] = {}
        self._prev_records: int | None = None
        self._next_poll = 0.0
        self._next_keepalive = 0.0
        self._clock_ok = False

    # -- options -------------------------------------------------------------------------
    @staticmethod
    def parse_options(fields: Fields) -> ZkOptions | None:
        return parse_options(fields)

    # -- lifecycle -----------------------------------------------------------------------
    def open(self) -> None:
        self.close()
        o = self.opts
        try:
            udp = o.transport == "udp"  # each chunk received feeds the watchdog (issue 12):
            zk = HardenedZK(o.host, o.port, o.timeout_s, o.password, udp, on_data=self.ctx.progress)
            self._zk = zk
            zk.connect()
            self.serial = str(zk.get_serialnumber()).strip()
            if not self.serial:
                raise DriverError(f"{self.name}: terminal reported an empty serial number", fault=1)
            self.info = {
                "serial": self.serial,
                "firmware": _safe(zk.get_firmware_version),
                "platform": _safe(zk.get_platform),
                "device_name": _safe(zk.get_device_name),
            }
            self._open_live()
            self._reconcile(full=True)
        except DriverError:
            self.close()
            raise
        except Exception as err:
            self.close()
            raise DriverError(
                f"{self.name}: cannot open {o.transport}://{o.host}:{o.port}: {_why(err)}", fault=1
            ) from err
        log.info("zk_open", terminal=self.name, serial=self.serial, records=self._records())

    def close(self) -> None:
        live, self._live = self._live, None
        if live is not None:
            live.close()
        zk, self._zk = self._zk, None
        if zk is not None:
            try:
                zk.disconnect()
            except Exception as err:  # EXIT may fail on a dead link; the socket still closes
                log.debug("zk_exit_failed", terminal=self.name, error=_why(err))
            finally:
                zk.close_socket()
        self._rec.reset()

    def _open_live(self) -> None:
        self._live_warning = None
        if not self.opts.live:
            return
        o = self.opts
        link = LiveLink(o.host, o.port, o.transport, o.password, o.timeout_s)
        try:
            link.open()
        except LiveError as err:
            # Some firmware allow one session only: carry on with polls (no loss, only
            # latency) and say so in status().
            link.close()
            self._live_warning = f"live events unavailable ({err}); relying on polls"
            log.warning("zk_live_unavailable", terminal=self.name, error=str(err))
            return
        self._live = link

    # -- read ----------------------------------------------------------------------------
    def read(self, timeout: float) -> Sequence[Punch]:
        if self._zk is None:
            raise DriverError(f"{self.name}: not open", fault=1)
        self._rec.committed()
        try:
            out = self._live_punches(self._live.poll(0)) if self._live is not None else []
            now = time.monotonic()
            if not self._rec.pending and now >= self._next_poll:
                self._reconcile(full=False)
            if self._rec.pending:
                return out + self._batch(BATCH - len(out))
            if out:  # before the keepalive: a failing keepalive must not drop these
                return out
            if now >= self._next_keepalive:
                self._keepalive()
            wait = max(0.0, min(timeout, self._next_poll - now, self._next_keepalive - now))
            if self._live is not None:
                return self._live_punches(self._live.poll(wait))
            time.sleep(wait)
            return []
        except LiveError as err:
            self._live_failed(err)
            return []
        except DriverError:
            raise
        except Exception as err:
            raise DriverError(
                f"{self.name}: link to {self.opts.host} broken: {_why(err)}", fault=1
            ) from err

    def _live_failed(self, err: LiveError) -> None:
        """The event session broke. If the command session still answers, the terminal is
        alive (some firmware drop idle sessions): reopen the event session and reconcile now
        (events may have been missed); otherwise the terminal is gone or rebooted."""
        log.warning("zk_live_broken", terminal=self.name, error=str(err))
        live, self._live = self._live, None
        if live is not None:
            live.close()
        try:
            self._check_clock()
        except Exception as cmd_err:
            raise DriverError(
                f"{self.name}: terminal {self.opts.host} stopped answering ({err}; "
                f"{_why(cmd_err)})",
                fault=1,
            ) from cmd_err
        self._open_live()
        self._next_poll = 0.0

    def _batch(self, limit: int) -> list[Punch]:
        recs, issues = self._rec.next_batch(limit)
        self._note_issues(issues)
        self._clock_ok = self.clock.punch_clock_ok()
        return [self._punch(r) for r in recs]

    def _reconcile(self, *, full: bool) -> int:
        zk = self._zk
        dl = download(zk)
        self.sizes = dl.sizes
        self.record_size = dl.log.record_size
        self._note_issues(dl.log.issues)
        self._warnings = list(dl.warnings)
        prev, self._prev_records = self._prev_records, dl.log.count
        if prev and dl.log.count < prev:
            self._warnings.append(
                f"terminal log shrank from {prev} to {dl.log.count} records "
                "(cleared or cyclic delete); all records re-sent"
            )
        todo = self._rec.load(dl.log, full=full)
        self._check_clock()
        self.last_reconcile = self.ctx.clock.now()
        self.last_download = {
            "records": dl.log.count,
            "record_size": dl.log.record_size,
            "attempts": dl.attempts,
            "to_deliver": todo,
            "already_committed": self._rec.skipped,
            "full": full,
        }
        self._next_poll = time.monotonic() + self.opts.poll_interval_s
        self._next_keepalive = time.monotonic() + self._keepalive_s()
        log.info("zk_reconcile", terminal=self.name, **self.last_download)
        return todo

    def _keepalive_s(self) -> float:
        return max(1.0, min(30.0, 3 * self.opts.timeout_s))

    def _keepalive(self) -> None:
        """Prove the terminal is alive (and measure its clock) between polls."""
        if self._live is not None:
            t0 = self.ctx.clock.now()
            term = self._live.get_time()
            self.clock.measured(term, t0, self.ctx.clock.now())
        else:
            self._check_clock()
        self._next_keepalive = time.monotonic() + self._keepalive_s()

    def _check_clock(self) -> None:
        zk = self._zk
        t0 = self.ctx.clock.now()
        term = read_terminal_time(zk)
        self.clock.measured(term, t0, self.ctx.clock.now())
        self.clock.maybe_sync(zk)

    # -- records → punches ---------------------------------------------------------------
    def _make(
        self,
        user_id: str,
        when: datetime,
        state: int,
        verify: int,
        *,
        extra: dict[str, Any],
        suspect: str | None,
    ) -> Punch:
        if suspect:
            extra["suspect"] = suspect
        return make_punch(
            self.name,
            self.serial,
            self.ctx.timezone,
            user_id=user_id,
            when=when,
            state=state,
            verify=verify,
            clock_synced=self._clock_ok and suspect is None,
            extra=extra,
        )

    def _punch(self, r: AttRecord) -> Punch:
        extra: dict[str, Any] = {"record_size": self.record_size, "via": "log"}
        if r.workcode:
            extra["workcode"] = r.workcode
        return self._make(r.user_id, r.time, r.state, r.verify, extra=extra, suspect=r.suspect)

    def _live_punches(self, events: list[LiveEvent]) -> list[Punch]:
        out: list[Punch] = []
        self._clock_ok = self.clock.punch_clock_ok()
        for e in events:
            # A uid-keyed event only names the same user as the log on 8-byte-record
            # terminals; otherwise its id would not match the log's: reconcile instead.
            if (e.id_kind == "uid") != (self.record_size == 8):
                self._next_poll = 0.0
                continue
            suspect = "clock_reset" if e.time.year == 2000 else None
            out.append(
                self._make(
                    e.user_id,
                    e.time,
                    e.state,
                    e.verify,
                    extra={"record_size": self.record_size, "via": "live"},
                    suspect=suspect,
                )
            )
        if self._live is not None and self._live.problems:
            for p in self._live.problems:
                self._issues.append({"index": -1, "kind": "live_event", "detail": p})
            self._live.problems.clear()
            self._next_poll = 0.0  # an event we could not read: the log has it
        return out

    def _note_issues(self, issues: list[RecordIssue]) -> None:
        for i in issues:
            key = (i.index, i.raw_hex)
            target = self._bad if i.skipped and i.index >= 0 else self._suspect
            if i.index >= 0 and key in target:
                continue
            if i.index >= 0 and len(target) < 100_000:
                target.add(key)
            self._issues.append(i.as_dict())
            log.warning("zk_record_issue", terminal=self.name, **i.as_dict())

    def _records(self) -> int | None:
        return self.sizes.records if self.sizes else None

    # -- figures -------------------------------------------------------------------------
    def status(self) -> Mapping[str, JSON]:
        s = self.sizes
        usage = (s.records / s.rec_cap) if s and s.rec_cap > 0 else None
        warnings = list(self._warnings) + self.clock.warnings()
        if self._live_warning:
            warnings.append(self._live_warning)
        if self._bad:
            warnings.append(f"{len(self._bad)} unreadable record(s) skipped; see probe")
        out: dict[str, JSON] = {
            "serial": self.serial,
            "firmware": self.info.get("firmware"),
            "connected": self._zk is not None,
            "clock_skew_s": self.clock.skew_s,
            "log_records": s.records if s else None,
            "log_capacity": s.rec_cap if s else None,
            "log_usage": round(usage, 4) if usage is not None else None,
            "warnings": warnings,
            "last_reconcile": self.last_reconcile.isoformat() if self.last_reconcile else None,
            "bad_records": len(self._bad),
            "suspect_records": len(self._suspect),
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

    def diagnose(self) -> Diagnosis:
        from drivers.zk_terminal.diagnose import diagnose

        return diagnose(self.opts, self.ctx)

    def advice(self) -> str:
        from drivers.zk_terminal.diagnose import advice

        return advice(self.opts)

    def probe(self) -> Mapping[str, JSON]:
        s = self.sizes
        out: dict[str, JSON] = dict(self.status())
        out.update(
            {
                "host": self.opts.host,
                "port": self.opts.port,
                "transport": self.opts.transport,
                **{k: v for k, v in self.info.items() if k != "serial"},
                "record_size": self.record_size,
                "sizes": None if s is None else {k: getattr(s, k) for k in s.__dataclass_fields__},
                "live": self._live is not None,
                "last_download": dict(self.last_download),
                "clock": self.clock.describe(),
                "issues": list(self._issues),
                "frames": self._zk.trace() if self._zk is not None else [],
            }
        )
        return out

    # -- actions -------------------------------------------------------------------------
    def pull(self) -> Mapping[str, JSON]:
        """Reconcile now and hand out the whole log again (a technician's refill)."""
        if self._zk is None:
            raise DriverError(f"{self.name}: not open", fault=1)
        try:
            todo = self._reconcile(full=True)
        except Exception as err:
            raise DriverError(f"{self.name}: pull failed: {_why(err)}", fault=1) from err
        return {
            "records": self._records(),
            "to_deliver": todo,
            "bad_records": len(self._bad),
            "warnings": list(self._warnings),
        }

    def sync_clock(self) -> Mapping[str, JSON]:
        """Set the terminal's clock from the Pi now (refused unless the Pi is NTP-synced)."""
        if self._zk is None:
            raise DriverError(f"{self.name}: not open", fault=1)
        try:
            self._check_clock()
            return self.clock.sync_now(self._zk, force=True)
        except Exception as err:
            raise DriverError(f"{self.name}: sync_clock failed: {_why(err)}", fault=1) from err


def _safe(fn: Any) -> str:
    try:
        return str(fn())
    except Exception:  # optional details: a firmware that lacks one must not fail open()
        return ""


def _why(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
