"""LED output backends: the only code that touches GPIO.

A backend drives plain on/off outputs by BCM pin number. Three exist:

* ``rpi_gpio``: the ``RPi.GPIO`` API. On a Pi 3/4 that is RPi.GPIO itself; on a Pi 5 the
  ``rpi-lgpio`` package provides the same module on top of ``/dev/gpiochip*``, because
  RPi.GPIO fails there with "Cannot determine SOC peripheral base address" (gpiozero#1172,
  Adafruit_Blinka#874; notes/pi-serial-gpio-systemd.md §2.1). Imported lazily.
* ``null``: does nothing (x86 CI, a Pi without LEDs, or GPIO unavailable).
* ``RecordingBackend``: remembers every transition with a timestamp, for tests and the demo.

A Pi without working GPIO is never a crash: :func:`make_backend` logs a warning and returns
the null backend, and :class:`gateway.appliance.leds.Leds` does the same if setting the pins
up fails.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Protocol, runtime_checkable

import structlog

log = structlog.get_logger(__name__)

#: Backend names accepted in ``[leds] backend`` (the config validator may reuse this).
BACKENDS: tuple[str, ...] = ("rpi_gpio", "null")


@runtime_checkable
class LedBackend(Protocol):
    """On/off outputs addressed by BCM pin number."""

    name: str

    def setup(self, pins: Sequence[int]) -> None:
        """Claim ``pins`` as outputs, initially off. May raise if GPIO is unusable."""

    def set(self, pin: int, on: bool) -> None:
        """Drive one pin."""

    def close(self) -> None:
        """Turn everything off and release the pins. Idempotent."""


class NullBackend:
    """Lights nothing. Used where there is no GPIO, or it failed."""

    name = "null"

    def __init__(self, reason: str = "") -> None:
        self.reason = reason

    def setup(self, pins: Sequence[int]) -> None:
        return None

    def set(self, pin: int, on: bool) -> None:
        return None

    def close(self) -> None:
        return None


class RecordingBackend:
    """Records ``(time, pin, on)`` for every change of a pin's state.

    ``clock`` supplies the timestamps (inject the engine's manual clock in tests).
    """

    name = "recording"

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.pins: tuple[int, ...] = ()
        self.state: dict[int, bool] = {}
        self.transitions: list[tuple[float, int, bool]] = []
        self.closed = False

    def setup(self, pins: Sequence[int]) -> None:
        self.pins = tuple(pins)
        self.closed = False
        for pin in self.pins:
            self.state[pin] = False

    def set(self, pin: int, on: bool) -> None:
        if self.state.get(pin) == on:
            return
        self.state[pin] = on
        self.transitions.append((self._clock(), pin, on))

    def close(self) -> None:
        for pin in self.pins:
            self.set(pin, False)
        self.closed = True

    # -- helpers for tests ------------------------------------------------------------------
    def changes(self, pin: int, since: float = float("-inf")) -> list[tuple[float, bool]]:
        """The transitions of one pin at or after ``since``."""
        return [(t, on) for t, p, on in self.transitions if p == pin and t >= since]

    def clear(self) -> None:
        self.transitions.clear()


class RpiGpioBackend:
    """The RPi.GPIO API (RPi.GPIO on Pi 3/4, rpi-lgpio on Pi 5), BCM numbering."""

    name = "rpi_gpio"

    def __init__(self, module: ModuleType) -> None:
        self._gpio = module
        self._pins: tuple[int, ...] = ()

    def setup(self, pins: Sequence[int]) -> None:
        gpio = self._gpio
        # A previous instance that died without cleanup leaves the pins configured; that
        # warning is noise for a daemon restarted by systemd.
        gpio.setwarnings(False)
        gpio.setmode(gpio.BCM)
        for pin in pins:
            gpio.setup(pin, gpio.OUT, initial=gpio.LOW)
        self._pins = tuple(pins)

    def set(self, pin: int, on: bool) -> None:
        self._gpio.output(pin, self._gpio.HIGH if on else self._gpio.LOW)

    def close(self) -> None:
        if not self._pins:
            return
        pins, self._pins = self._pins, ()
        for pin in pins:
            try:
                self._gpio.output(pin, self._gpio.LOW)
            except Exception as err:  # best effort: we are shutting down
                log.debug("led_off_failed", pin=pin, error=str(err))
        try:
            self._gpio.cleanup(list(pins))
        except Exception as err:
            log.debug("gpio_cleanup_failed", error=str(err))


class ManualClock:
    """A clock that only moves when told to: for :meth:`Leds.run_until` in tests."""

    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _import_rpi_gpio() -> ModuleType:
    import RPi.GPIO as gpio  # the module's conventional name

    return gpio  # type: ignore[no-any-return]


def make_backend(name: str) -> LedBackend:
    """The backend called ``name``; the null backend (with a warning) if GPIO is unusable.

    Raises ``ValueError`` only for a name that is not a backend at all (a config error the
    validator should have caught).
    """
    if name == "null":
        return NullBackend("configured")
    if name != "rpi_gpio":
        raise ValueError(f"unknown LED backend {name!r}; expected one of {', '.join(BACKENDS)}")
    try:
        module = _import_rpi_gpio()
    except ImportError as err:
        reason = f"RPi.GPIO is not installed ({err}); install rpi-lgpio on a Pi 5, RPi.GPIO else"
    except RuntimeError as err:
        # RPi.GPIO raises RuntimeError on import off a Pi ("This module can only be run on a
        # Raspberry Pi!") and on a Pi 5 ("Cannot determine SOC peripheral base address").
        reason = f"RPi.GPIO cannot run on this board: {err}"
    except Exception as err:  # a broken GPIO library must not stop the gateway
        reason = f"RPi.GPIO failed to load: {type(err).__name__}: {err}"
    else:
        return RpiGpioBackend(module)
    log.warning("leds_disabled", backend=name, reason=reason)
    return NullBackend(reason)
