"""One runner thread per terminal: open, read, commit, and back off on failure.

The runner owns its driver (nobody else touches it) and all retrying: capped exponential
backoff with jitter, driven by a ``tenacity.Retrying`` (the sleep is the stop event, so
shutdown is never delayed by a backoff; the backoff restarts once a session came up). A
punch is committed to the store before the driver is asked for more, which is the contract
that lets a driver treat its next ``read()`` as an ack.

Technician actions (pull now, sync the clock, probe) arrive on a queue and run on the
runner's thread between reads, so a driver never sees two threads.
"""

from __future__ import annotations

import contextlib
import queue
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

import structlog
from tenacity import RetryCallState, Retrying, retry_if_exception_type

from gateway.errors import DriverError, GatewayError, StoreError
from gateway.pipeline.driver import JSON, Clock, Driver, SystemClock, bind_progress
from gateway.pipeline.punch import Punch
from gateway.store.guard import is_disk_full

log = structlog.get_logger(__name__)

READ_TIMEOUT_S = 1.0
#: Keys of a terminal's health entry that belong to the runner, never to driver figures.
_RUNNER_KEYS = ("state", "detail", "since", "fault", "driver", "punches", "last_punch_at")
STATUS_EVERY_S = 5.0


class PunchSink(Protocol):
    """Where committed punches go: the store (or a list in a unit test)."""

    def add(self, punches: Sequence[Punch]) -> int: ...


@dataclass(frozen=True)
class TerminalState:
    """What the health model, the LEDs and the status topic know about one terminal."""

    name: str
    driver: str
    state: str = "offline"  # online | offline | fault | paused
    detail: str | None = "starting"
    since: datetime | None = None
    fault: int | None = None  # LED fault code, when one applies
    last_punch_at: datetime | None = None
    punches: int = 0
    figures: Mapping[str, JSON] = field(default_factory=dict)  # driver.status()


class TerminalRunner:
    """Drives one driver on its own named thread."""

    def __init__(
        self,
        driver: Driver,
        sink: PunchSink,
        *,
        clock: Clock | None = None,
        on_change: Callable[[TerminalState], None] | None = None,
        on_commit: Callable[[int], None] | None = None,
        may_pull: Callable[[Driver], bool] | None = None,
        backoff_max_s: float = 30.0,
    ) -> None:
        self.driver = driver
        self.sink = sink
        self.clock = clock or SystemClock()
        self._on_change = on_change
        self._on_commit = on_commit
        self._may_pull = may_pull or (lambda _d: True)
        self._backoff_max = backoff_max_s
        self._stop = threading.Event()
        self._actions: queue.SimpleQueue[tuple[str, Future[Mapping[str, JSON]]]] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._run, name=f"runner:{driver.name}", daemon=True)
        self.state = TerminalState(driver.name, driver.kind, since=self.clock.now())
        self.progress = time.monotonic()  # for the systemd watchdog: a wedged read stops it
        self._up_at_attempt = 0  # the tenacity attempt after which the link was last up

    # -- public --------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def submit(self, action: str) -> Future[Mapping[str, JSON]]:
        """Run ``action`` (``pull``, ``sync_clock``, ``probe``) on the runner's thread."""
        fut: Future[Mapping[str, JSON]] = Future()
        if action != "probe" and not callable(getattr(self.driver, action, None)):
            fut.set_exception(GatewayError(f"{self.driver.kind} terminals cannot {action}"))
        elif not self.alive:
            fut.set_exception(GatewayError("the terminal's runner is not running"))
        else:
            self._actions.put((action, fut))
        return fut

    # -- the thread ----------------------------------------------------------------------
    def _run(self) -> None:
        # Long driver calls report progress through ctx.progress() (issue 12): a ZK log
        # download of minutes keeps the watchdog fed while its chunks arrive.
        bind_progress(self._beat)
        # tenacity drives the reconnect loop (issue 11: its public API, no fake call state):
        # every attempt is open + session; an attempt only returns when a stop was asked.
        retrying = Retrying(
            retry=retry_if_exception_type(_SessionEnded),
            stop=lambda _rs: self._stop.is_set(),
            wait=self._backoff,
            sleep=self._sleep,  # the stop event: shutdown never waits for a backoff
            before_sleep=self._log_backoff,
            reraise=True,
        )
        with contextlib.suppress(_SessionEnded):
            for attempt in retrying:
                with attempt:
                    self._attempt(attempt.retry_state.attempt_number)

    def _attempt(self, number: int) -> None:
        try:
            self._session(number)
        except DriverError as err:
            self._set("offline", str(err), fault=err.fault)
        except StoreError as err:
            # Nothing was acknowledged to the driver: closing it and reopening later
            # makes a terminal with a log send everything again (4 = database error,
            # 3 = disk full: the terminal keeps its log until there is room).
            full = is_disk_full(err)
            self._set("fault", f"{'disk full' if full else 'store'}: {err}", fault=3 if full else 4)
        except Exception as err:  # a driver bug must not end the thread
            log.exception("driver crashed", terminal=self.driver.name)
            self._set("fault", f"driver error: {err!r}", fault=1)
        finally:
            self._close()
            # The figures of the session that just ended would say e.g. port "open" while
            # the port is missing: take the driver's word after the close (issue 12).
            with contextlib.suppress(Exception):
                figures = _driver_figures(dict(self.driver.status()))
                self.state = replace(self.state, figures=figures)
        self._fail_actions("terminal offline")
        if not self._stop.is_set():
            raise _SessionEnded

    def _beat(self) -> None:
        self.progress = time.monotonic()

    def _backoff(self, rs: RetryCallState) -> float:
        """Capped exponential backoff with jitter, counted from the link's last time up."""
        failures = rs.attempt_number - self._up_at_attempt
        return min(self._backoff_max, 2.0 ** (failures - 1)) + random.uniform(0, 1)

    def _log_backoff(self, rs: RetryCallState) -> None:
        delay = rs.next_action.sleep if rs.next_action is not None else 0.0
        log.info("reconnecting later", terminal=self.driver.name, in_s=round(delay, 1))

    def _session(self, attempt: int) -> None:
        self.driver.open()
        self._up_at_attempt = attempt - 1  # the backoff starts again from its first step
        self._set("online", None)
        last_status = 0.0
        while not self._stop.is_set():
            if not self._may_pull(self.driver):
                self._set("paused", "disk low: the terminal keeps its log until there is room")
                self._run_actions()
                self._sleep(1.0)
                continue
            if self.state.state == "paused":
                self._set("online", None)
            punches = self.driver.read(READ_TIMEOUT_S)
            if punches:
                added = self._commit(punches)  # durable before the driver reads on
                self.state = replace(
                    self.state, last_punch_at=self.clock.now(), punches=self.state.punches + added
                )
                if added and self._on_commit is not None:
                    self._on_commit(added)
            self.progress = time.monotonic()
            self._run_actions()
            if time.monotonic() - last_status >= STATUS_EVERY_S:
                last_status = time.monotonic()
                self._refresh_status()

    def _commit(self, punches: Sequence[Punch]) -> int:
        """Commit a batch. A driver without a log (a serial reader) has the only copy, so a
        failed commit (disk full, issue 7) keeps the batch and retries with backoff without
        reading more; a driver with a log is closed and re-pulled later instead."""
        attempt = 0
        while True:
            try:
                added = self.sink.add(punches)
            except StoreError as err:
                if getattr(self.driver, "keeps_log", False):
                    raise
                attempt += 1
                full = is_disk_full(err)
                self._set(
                    "fault",
                    f"{'disk full' if full else 'store'}: {len(punches)} "
                    f"punch(es) held in memory, retrying: {err}",
                    fault=3 if full else 4,
                )
                if self._stop.is_set():
                    # Last resort: the journal keeps them for a technician (never a secret).
                    log.error(
                        "punches not committed at shutdown",
                        terminal=self.driver.name,
                        punches=[p.to_record() for p in punches],
                    )
                    raise
                self._sleep(min(10.0, 0.5 * 2 ** min(attempt, 5)))
                continue
            if attempt:
                self._set("online", None)
            return added

    def _refresh_status(self) -> None:
        raw = dict(self.driver.status())
        fault_text = raw.get("fault")
        self.state = replace(self.state, figures=_driver_figures(raw))
        if fault_text and self.state.state != "fault":
            self._set("fault", str(fault_text), fault=1)
        elif not fault_text and self.state.state == "fault":
            self._set("online", None)

    def _run_actions(self) -> None:
        while True:
            try:
                action, fut = self._actions.get_nowait()
            except queue.Empty:
                return
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                run = self.driver.probe if action == "probe" else getattr(self.driver, action)
                result = run()
                fut.set_result(result)
            except DriverError as err:
                fut.set_exception(err)
                raise  # the link is broken: reconnect like any other failure
            except Exception as err:  # reported to the technician who asked
                fut.set_exception(err)

    def _fail_actions(self, why: str) -> None:
        while True:
            try:
                _, fut = self._actions.get_nowait()
            except queue.Empty:
                return
            if fut.set_running_or_notify_cancel():
                fut.set_exception(GatewayError(why))

    def _close(self) -> None:
        try:
            self.driver.close()
        except Exception:  # close must never stop the reconnect loop
            log.exception("driver close failed", terminal=self.driver.name)

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self._stop.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return
            self.progress = time.monotonic()  # backing off is progress, not a hang
            self._stop.wait(min(left, 5.0))
            self._run_actions_offline()

    def _run_actions_offline(self) -> None:
        if self.state.state != "online":
            self._fail_actions(f"terminal {self.state.state}: {self.state.detail}")

    def _set(self, state: str, detail: str | None, *, fault: int | None = None) -> None:
        if (state, detail, fault) == (self.state.state, self.state.detail, self.state.fault):
            return
        self.state = replace(
            self.state, state=state, detail=detail, fault=fault, since=self.clock.now()
        )
        (log.info if state == "online" else log.warning)(
            "terminal state", terminal=self.driver.name, state=state, detail=detail
        )
        if self._on_change is not None:
            self._on_change(self.state)


def _driver_figures(raw: dict[str, JSON]) -> dict[str, JSON]:
    """A driver's figures without the names the runner's own state uses.

    Health merges figures into each terminal's entry: a driver's ``state`` ("open") must not
    overwrite the runner's ("online"), or ``status`` exits 1 and doctor FAILs every healthy
    site with a serial reader (issue 12). ``fault`` is the driver's text, which the runner
    already turned into its state and detail; the entry's ``fault`` is the LED code.
    """
    return {k: v for k, v in raw.items() if k not in _RUNNER_KEYS}


class _SessionEnded(Exception):
    """An attempt ended (the link failed or the driver crashed): tenacity retries it."""
