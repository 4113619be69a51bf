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

from drivers.zk_terminal import report
from drivers.zk_terminal.client import HardenedZK
from drivers.zk_terminal.clock import ClockWatch, read_terminal_time
from drivers.zk_terminal.codec import FreeSizes
from drivers.zk_terminal.identity import identify
from drivers.zk_terminal.live import LiveError, LiveLink
from drivers.zk_terminal.options import ZkOptions, parse_options
from drivers.zk_terminal.punches import make_punch
from drivers.zk_terminal.reconcile import Reconciler, download, read_sizes
from drivers.zk_terminal.records import AttRecord, LiveEvent, RecordIssue
from drivers.zk_terminal.tail import download_tail
from drivers.zk_terminal.touch import SAFETY, LightTouch
from drivers.zk_terminal.users import SlotMapper
from gateway.config.validate import Fields
from gateway.errors import DriverError
from gateway.pipeline.driver import JSON, Diagnosis, DriverContext
from gateway.pipeline.punch import Punch

log = structlog.get_logger(__name__)
BATCH = 5000
ISSUES_KEPT = 50


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
        self._touch = LightTouch(options.full_download_interval_s)
        self._slots = SlotMapper()
        self._tail_reads = True
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
        self.last_check: datetime | None = None  # the last poll's cheap check
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
            # Another terminal at this address (issue 14) fails here: nothing is read.
            self.serial, self.info = identify(zk, self.name, o)
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
        self._touch.reset()
        self._slots = SlotMapper()
        self._tail_reads = True

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
                self._poll()
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
        self._reconcile_soon()

    def _reconcile_soon(self) -> None:
        self._next_poll = 0.0
        self._touch.force()

    def _poll(self) -> None:
        """The cheap check (free sizes); the download only when it finds something new."""
        sizes = read_sizes(self._zk)
        self.sizes, self.last_check = sizes, self.ctx.clock.now()
        self._slots.note_count(sizes.users)
        why = self._touch.reason(sizes.records, time.monotonic())
        if why is not None:
            self._reconcile(full=False, why=why)
            return
        self._check_clock()
        self._schedule()

    def _schedule(self) -> None:
        self._next_poll = time.monotonic() + self.opts.poll_interval_s
        self._next_keepalive = time.monotonic() + self._keepalive_s()

    def _batch(self, limit: int) -> list[Punch]:
        recs, issues = self._rec.next_batch(limit)
        self._note_issues(issues)
        self._clock_ok = self.clock.punch_clock_ok()
        return [self._punch(r) for r in recs]

    def _reconcile(self, *, full: bool, why: str = "open or pull") -> int:
        zk = self._zk
        whole = full or why == SAFETY or not self._tail_reads
        known = None if whole else self._rec.known()
        dl, failed = (None, False)
        if known is not None:
            dl, failed = download_tail(zk, known, tcp=self.opts.transport == "tcp")
        if dl is None:
            dl = download(zk)
        self._touch.downloaded(dl.log.total, time.monotonic(), whole=not dl.log.base)
        self._slots.new_pass()
        self.sizes = dl.sizes
        self.record_size = dl.log.record_size
        self._note_issues(dl.log.issues)
        self._warnings = list(dl.warnings)
        prev, self._prev_records = self._prev_records, dl.log.total
        if prev and dl.log.total < prev:
            self._warnings.append(
                f"terminal log shrank from {prev} to {dl.log.total} records "
                "(cleared or cyclic delete); all records re-sent"
            )
        todo = self._rec.load_tail(dl.log) if dl.log.base else self._rec.load(dl.log, full=full)
        if failed and known and self._rec.skipped * known.record_size >= known.n_bytes:
            # The tail read failed its checks, yet the whole log continues the prefix: this
            # terminal's ranged reads are not to be trusted (issue 14): whole logs from now.
            self._tail_reads = False
            log.warning("zk_tail_reads_off", terminal=self.name)
        self._check_clock()
        self.last_reconcile = self.ctx.clock.now()
        self.last_download = {
            "records": dl.log.total,
            "record_size": dl.log.record_size,
            "attempts": dl.attempts,
            "to_deliver": todo,
            "already_committed": self._rec.skipped,
            "full": full,
            "why": why,
            "tail_bytes": dl.tail_bytes,
        }
        self._schedule()
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
        user_id = r.user_id
        if r.flags is not None and r.uid is not None:  # an 8-byte record names a slot
            extra["flags"] = r.flags
            user_id = self._pin(r.uid, extra, r.index)
        return self._make(user_id, r.time, r.state, r.verify, extra=extra, suspect=r.suspect)

    def _pin(self, uid: int, extra: dict[str, Any], index: int) -> str:
        """Slot → PIN through the terminal's user table (issue 14). A slot no longer in the
        table (user deleted) keeps a stable id ``uid:N`` and is reported, never dropped."""
        extra["uid"] = uid
        pin = self._slots.resolve(self._zk, uid, self.name)
        if pin is not None:
            return pin
        self._note_issues(
            [RecordIssue(index, "unknown_user", f"slot {uid} not in the user table", "", False)]
        )
        return f"uid:{uid}"

    def _live_punches(self, events: list[LiveEvent]) -> list[Punch]:
        out: list[Punch] = []
        self._clock_ok = self.clock.punch_clock_ok()
        self._slots.new_pass()
        for e in events:
            extra: dict[str, Any] = {"record_size": self.record_size, "via": "live"}
            user_id = e.user_id
            if e.id_kind == "uid":
                # A slot-keyed event names the same user as the log only where the log is
                # mapped through the user table too (8-byte records); otherwise reconcile.
                if self.record_size != 8:
                    self._reconcile_soon()
                    continue
                user_id = self._pin(int(e.user_id), extra, -1)
            suspect = "clock_reset" if e.time.year == 2000 else None
            p = self._make(user_id, e.time, e.state, e.verify, extra=extra, suspect=suspect)
            out.append(p)
        if self._live is not None and self._live.problems:
            for p in self._live.problems:
                self._issues.append({"index": -1, "kind": "live_event", "detail": p})
            self._live.problems.clear()
            self._reconcile_soon()  # an event we could not read: the log has it
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
        return report.status(self)

    def diagnose(self) -> Diagnosis:
        from drivers.zk_terminal.diagnose import diagnose

        return diagnose(self.opts, self.ctx)

    def advice(self) -> str:
        from drivers.zk_terminal.diagnose import advice

        return advice(self.opts)

    def probe(self) -> Mapping[str, JSON]:
        return report.probe(self)

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


def _why(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
