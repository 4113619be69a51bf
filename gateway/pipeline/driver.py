"""The driver contract: what a terminal driver is, and what the gateway gives it.

Drivers are passive. They own no thread and retry nothing: exactly one runner thread
(``gateway.pipeline.runner``) calls ``open``/``read``/``close`` with explicit timeouts, commits what
``read`` returns to the store, and backs off when a ``DriverError`` is raised.

Rules every driver follows:

* ``read(timeout)`` blocks at most about ``timeout`` seconds and returns ``[]`` when nothing
  happened. Calling ``read`` again means every punch the previous call returned is committed
  to the store (the runner only calls again after the commit succeeded; if the commit fails it
  closes the driver, so a terminal that keeps a log is reconciled again on reopen).
* A broken link raises ``DriverError`` (with a fault code); the runner closes and reopens.
* ``close()`` is idempotent and safe after a failed ``open()``.
* ``probe()`` and ``status()`` never raise for an unopened driver.
* ``diagnose()`` is for ``gatewayctl doctor`` while the daemon is stopped: a short direct
  check of its own (open briefly, read figures, close), never raising; ``advice()`` is the
  one-line fix a technician follows when the terminal is unreachable. Doctor calls only these,
  so a new driver needs no doctor edit (issue 11).
* Library exceptions are translated at the boundary: ``raise DriverError(..) from err``.
* Long work inside one call (a ZK log download of 100 000 records takes minutes) calls
  ``ctx.progress()`` whenever it gets somewhere (a chunk arrived): the runner counts that as
  progress for the systemd watchdog, so only a call that truly stops moving stops it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from gateway.config.validate import Fields
    from gateway.pipeline.punch import Punch

JSON = Any  # a JSON-serialisable value (mypy cannot express the recursive type cheaply)


class Clock(Protocol):
    """Wall and monotonic time, injectable so tests can jump the Pi's clock."""

    def now(self) -> datetime:
        """Timezone-aware UTC wall time."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never jumps."""


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


class TimeSync(Protocol):
    """Whether the Pi's own clock is NTP-synchronised (a Pi 3/4 has no RTC)."""

    def synced(self) -> bool: ...


@dataclass(frozen=True)
class DriverContext:
    """What the gateway hands every driver: its identity, zone, clock and sync source."""

    gateway_id: str
    timezone: ZoneInfo
    clock: Clock = field(default_factory=SystemClock)
    time_sync: TimeSync | None = None
    data_dir: str = "."

    def clock_synced(self) -> bool:
        return self.time_sync.synced() if self.time_sync is not None else True

    def progress(self) -> None:
        """Long work is moving (a chunk arrived): feeds the watchdog of the calling runner.

        One context is shared by every driver and built before the runners, so the hook is
        the one the calling thread bound (``bind_progress``); drivers only run on their
        runner's thread (issue 12). A no-op outside a runner (doctor, the CLI's probe).
        """
        hook = getattr(_progress_hook, "fn", None)
        if hook is not None:
            hook()


_progress_hook = threading.local()


def bind_progress(hook: Callable[[], None] | None) -> None:
    """Make ``DriverContext.progress()`` on this thread call ``hook`` (the runner's)."""
    _progress_hook.fn = hook


@dataclass(frozen=True)
class Diagnosis:
    """What ``Driver.diagnose()`` found. ``verdict``: ok, fail, or skip (cannot tell here)."""

    verdict: str
    detail: str
    fix: str | None = None
    fault: int | None = None  # LED fault code when the verdict is fail
    #: The same figures as ``status()`` (``clock_skew_s``, ``log_usage``...), for doctor's
    #: clock and log checks.
    figures: Mapping[str, JSON] = field(default_factory=dict)


def diagnose_by_opening(driver: Driver) -> Diagnosis:
    """The generic ``diagnose()``: open, read ``status()``, close; a failure is a fail."""
    try:
        driver.open()
        figures = dict(driver.status())
    except Exception as err:  # doctor reports it; it must never raise
        return Diagnosis(
            "fail", f"cannot open: {err}", driver.advice(), getattr(err, "fault", None) or 1
        )
    finally:
        driver.close()
    return Diagnosis("ok", "opens and answers", figures=figures)


@runtime_checkable
class Driver(Protocol):
    """A link to one terminal, driven by exactly one runner thread."""

    name: str
    #: "zk", "serial", "virtual": the registry key, copied into every punch.
    kind: str
    #: True when the terminal keeps its own log (ZK): the gateway may stop pulling when its
    #: disk is low, and the terminal holds the punches until there is room again.
    keeps_log: bool

    def open(self) -> None:
        """Acquire the port or connection; raise ``DriverError`` if impossible."""

    def read(self, timeout: float) -> Sequence[Punch]:
        """Block at most ``timeout`` seconds; return the punches seen (maybe none)."""

    def close(self) -> None:
        """Release everything. Idempotent."""

    def probe(self) -> Mapping[str, JSON]:
        """Describe the link for a technician: firmware, counters, last frames."""

    def status(self) -> Mapping[str, JSON]:
        """Cheap current figures for health: e.g. ``clock_skew_s``, ``log_usage``, ``warnings``.

        May contain ``"fault": "<text>"`` when the terminal is connected but in trouble
        (e.g. its log is over 95 % full); the runner then reports the terminal as ``fault``.
        """

    def diagnose(self) -> Diagnosis:
        """A short direct check for ``doctor`` (daemon stopped); never raises."""

    def advice(self) -> str:
        """What a technician checks when this terminal is unreachable (one line)."""


class DriverFactory(Protocol):
    """How the registry builds a driver from its validated ``[[terminals]]`` table."""

    def __call__(self, name: str, options: Any, ctx: DriverContext) -> Driver: ...


class DriverSpec(Protocol):
    """What a driver module exposes to the registry (the class itself usually)."""

    @staticmethod
    def parse_options(fields: Fields) -> Any:
        """Validate the driver's own keys of one ``[[terminals]]`` table.

        Read every key through ``fields`` (which records each problem with its TOML path and
        rejects keys nobody read); return a frozen options object (None if invalid).
        """

    def __call__(self, name: str, options: Any, ctx: DriverContext) -> Driver: ...


#: Optional driver actions a technician can trigger over the control socket; the runner
#: executes them on the driver's own thread. A driver supports an action by having a method
#: of that name; each returns a JSON-able summary.
ACTIONS: tuple[str, ...] = ("pull", "sync_clock")

Action = Callable[[], Mapping[str, JSON]]
