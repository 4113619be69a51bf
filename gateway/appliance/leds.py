"""The three status LEDs of PRODUCT.md §5 (the fault table and patterns: ``led_codes``).

* heartbeat (green): 1 Hz blink while the daemon's health loop calls :meth:`Leds.beat`. If
  the beats stop for :data:`BEAT_TIMEOUT_S`, the LED freezes in whatever state it was, so a
  hung daemon shows a steady (on or off) green LED, never a healthy-looking blink.
* network (yellow): solid = connected and nothing pending, 1 Hz = draining a backlog,
  4 Hz = broker unreachable (buffering), off.
* fault (red): the most severe active code N (lowest number) as a dark pause followed by N
  short flashes, repeated; off when there is no fault.
* boot self-test: all three on for one second.

One thread ("leds") runs every pattern. It never polls: it computes when the next LED must
change and waits on a condition variable until then or until a setter wakes it. The engine is
a pure function of the clock (:meth:`Leds.tick`), so tests drive it with a
:class:`ManualClock` and :meth:`Leds.run_until` without sleeping, while the thread uses real
waits on ``time.monotonic``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import structlog

from gateway.appliance.led_backends import (
    BACKENDS,
    LedBackend,
    ManualClock,
    NullBackend,
    RecordingBackend,
    make_backend,
)
from gateway.appliance.led_codes import (
    BEAT_TIMEOUT_S,
    FAULT_CODES,
    HEARTBEAT,
    NETWORK_MODES,
    NETWORK_PATTERNS,
    ON,
    SELF_TEST_S,
    FaultCode,
    LedTestStep,
    Pattern,
    fault_pattern,
    led_test_steps,
)

# The daemon and the CLI import everything LED-related from here.
__all__ = [
    "BACKENDS",
    "FAULT_CODES",
    "NETWORK_MODES",
    "FaultCode",
    "LedBackend",
    "LedTestStep",
    "Leds",
    "ManualClock",
    "RecordingBackend",
    "led_test_steps",
    "make_backend",
]

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class _Scripted:
    start: float
    end: float
    step: LedTestStep


class Leds:
    """The LED engine. Setters are cheap and thread-safe; one thread drives the pins."""

    def __init__(
        self,
        backend: LedBackend,
        heartbeat_pin: int,
        network_pin: int,
        fault_pin: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        beat_timeout: float = BEAT_TIMEOUT_S,
    ) -> None:
        self._backend = backend
        self.pins = (heartbeat_pin, network_pin, fault_pin)
        self._clock = clock
        self._beat_timeout = beat_timeout
        self._cond = threading.Condition()
        self._gen = 0  # bumped by every change the thread must see
        self._stopping = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._applied: dict[int, bool] = {}
        self._last_beat: float | None = None
        self._hb_anchor = 0.0
        self._net_mode = "off"
        self._net_anchor = 0.0
        self._fault: int | None = None
        self._fault_anchor = 0.0
        self._script: list[_Scripted] = []
        self._unknown_codes: set[int] = set()
        self._tick_failed = False

    # -- the daemon's API -------------------------------------------------------------------
    @property
    def backend_name(self) -> str:
        return self._backend.name

    @property
    def network_mode(self) -> str:
        return self._net_mode

    @property
    def fault_code(self) -> int | None:
        return self._fault

    @property
    def testing(self) -> bool:
        """True while the self-test or a test sequence is still showing."""
        with self._cond:
            return bool(self._script) and self._script[-1].end > self._clock()

    def start(self, *, run_thread: bool = True) -> None:
        """Claim the pins, begin the 1 s self-test and start the "leds" thread.

        ``run_thread=False`` is for tests that step the engine with :meth:`run_until`.
        """
        if self._thread is not None or self._closed:
            return
        try:
            self._backend.setup(self.pins)
        except Exception as err:  # no GPIO permission, pin busy, not a Pi: never fatal
            reason = f"{type(err).__name__}: {err}"
            log.warning("leds_disabled", backend=self._backend.name, reason=reason)
            self._backend = NullBackend(reason)
        now = self._clock()
        with self._cond:
            self._script = [
                _Scripted(now, now + SELF_TEST_S, LedTestStep("self-test", SELF_TEST_S, ON, ON, ON))
            ]
            self._changed()
        if run_thread:
            self._thread = threading.Thread(target=self._run, name="leds", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread, turn every LED off and release the pins. Idempotent."""
        with self._cond:
            if self._closed:
                return
            self._closed = self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        for pin in self.pins:
            self._set(pin, False)
        try:
            self._backend.close()
        except Exception as err:
            log.warning("leds_close_failed", error=str(err))

    def beat(self) -> None:
        """The health loop is alive: keep the heartbeat blinking for another beat timeout."""
        now = self._clock()
        with self._cond:
            if self._last_beat is None or now - self._last_beat > self._beat_timeout:
                self._hb_anchor = now  # resume from a frozen LED with a fresh "on"
            self._last_beat = now
            self._changed()

    def set_network(self, mode: str) -> None:
        """``connected`` | ``draining`` | ``unreachable`` | ``off``."""
        if mode not in NETWORK_PATTERNS:
            raise ValueError(f"unknown network LED mode {mode!r}; expected {NETWORK_MODES}")
        with self._cond:
            if mode != self._net_mode:
                self._net_mode, self._net_anchor = mode, self._clock()
                self._changed()

    def set_faults(self, codes: Iterable[int]) -> None:
        """Show the most severe (lowest) known code among ``codes``; none: LED off."""
        known = set()
        for code in codes:
            if code in FAULT_CODES:
                known.add(code)
            elif code not in self._unknown_codes:
                self._unknown_codes.add(code)
                log.warning("unknown_fault_code", code=code)
        worst = min(known) if known else None
        with self._cond:
            if worst != self._fault:
                self._fault, self._fault_anchor = worst, self._clock()
                self._changed()

    def test_sequence(self) -> tuple[LedTestStep, ...]:
        """Show every pattern once (``gatewayctl led test``); returns at once.

        The steps run after any test already showing; the live state resumes afterwards.
        Callers wait ``sum(s.duration for s in steps)`` or poll :attr:`testing`.
        """
        steps = led_test_steps()
        with self._cond:
            start = max([self._clock()] + [s.end for s in self._script])
            for step in steps:
                self._script.append(_Scripted(start, start + step.duration, step))
                start += step.duration
            self._changed()
        return steps

    # -- the engine -------------------------------------------------------------------------
    def tick(self) -> float | None:
        """Drive the pins for the clock's current time; return the next deadline (or None)."""
        now = self._clock()
        with self._cond:
            states, deadline = self._evaluate(now)
        for pin, on in zip(self.pins, states, strict=True):
            self._set(pin, on)
        return deadline

    def run_until(self, until: float) -> None:
        """Step a :class:`ManualClock`-driven engine through every change up to ``until``."""
        clock = self._clock
        if not isinstance(clock, ManualClock):
            raise TypeError("run_until needs a ManualClock; the real engine runs on its thread")
        while True:
            deadline = self.tick()
            if deadline is None or deadline > until:
                break
            clock.t = max(deadline, clock.t)
        clock.t = until
        self.tick()

    def _changed(self) -> None:
        self._gen += 1
        self._cond.notify_all()

    def _evaluate(self, now: float) -> tuple[tuple[bool, bool, bool], float | None]:
        deadlines: list[float] = []

        def show(pattern: Pattern, anchor: float) -> bool:
            on, remaining = pattern.at(now - anchor)
            if remaining is not None:
                deadlines.append(now + remaining)
            return on

        while self._script and self._script[0].end <= now:
            self._script.pop(0)
        if self._script and self._script[0].start <= now:
            scripted = self._script[0]
            deadlines.append(scripted.end)
            step, t0 = scripted.step, scripted.start
            states = (show(step.heartbeat, t0), show(step.network, t0), show(step.fault, t0))
            return states, min(deadlines)
        if self._script:
            deadlines.append(self._script[0].start)

        heartbeat = False
        if self._last_beat is not None:
            freeze_at = self._last_beat + self._beat_timeout
            heartbeat, remaining = HEARTBEAT.at(min(now, freeze_at) - self._hb_anchor)
            # Past freeze_at nothing is scheduled: the LED holds still until beat() wakes us.
            if now < freeze_at and remaining is not None and now + remaining <= freeze_at:
                deadlines.append(now + remaining)
        network = show(NETWORK_PATTERNS[self._net_mode], self._net_anchor)
        fault = (
            False if self._fault is None else show(fault_pattern(self._fault), self._fault_anchor)
        )
        return (heartbeat, network, fault), (min(deadlines) if deadlines else None)

    def _set(self, pin: int, on: bool) -> None:
        if self._applied.get(pin) == on:
            return
        try:
            self._backend.set(pin, on)
        except Exception as err:  # e.g. the GPIO chip vanished: degrade to no LEDs, run on
            reason = f"{type(err).__name__}: {err}"
            log.warning("leds_disabled", backend=self._backend.name, pin=pin, reason=reason)
            self._backend = NullBackend(reason)
        self._applied[pin] = on

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
                gen = self._gen
            try:
                deadline = self.tick()
            except Exception:  # a bug here must not kill the thread silently, nor spin
                if not self._tick_failed:
                    log.exception("leds_tick_failed")
                    self._tick_failed = True
                deadline = self._clock() + 1.0
            with self._cond:
                if self._stopping:
                    return
                if self._gen != gen:
                    continue  # something changed while we were driving the pins
                timeout = None if deadline is None else max(0.0, deadline - self._clock())
                self._cond.wait(timeout)
