"""The supervisor: the daemon's main loop, and the only thing that feeds the watchdog.

Twice a second it beats the heartbeat LED (so a hung main loop freezes it). Once a second it
builds the health snapshot, sets the network and fault LEDs, and sends systemd ``WATCHDOG=1``
only if every runner and the publisher have made progress recently: a wedged thread stops
the pings, and systemd restarts the daemon. Every ``health_interval_s`` it publishes the
retained ``health`` message; periodic housekeeping hangs off the same loop. Long tasks
(pruning, backups) are ``background``: each runs in its own named thread with its own
database connection, so a big backup never holds up the watchdog ping (issue 12/13); a run
that is still going when the next is due is not started twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from gateway.appliance import sdnotify
from gateway.appliance.health import HealthModel, fault_codes, network_mode, one_line
from gateway.appliance.leds import Leds
from gateway.pipeline.runner import TerminalRunner
from gateway.uplink import payloads
from gateway.uplink.publisher import Publisher

log = structlog.get_logger(__name__)

BEAT_S = 0.5


@dataclass
class Periodic:
    """A housekeeping task run every ``every_s`` seconds: on the supervisor's thread, or
    with ``background`` in a thread of its own (``housekeeping-<name>``)."""

    name: str
    every_s: float
    fn: Callable[[], Any]
    next_at: float = field(default=0.0)
    background: bool = False
    thread: threading.Thread | None = field(default=None, repr=False)


class Supervisor:
    def __init__(
        self,
        *,
        health: HealthModel,
        leds: Leds,
        publisher: Publisher,
        runners: Sequence[TerminalRunner],
        health_interval_s: float,
        stall_s: float,
        tasks: Sequence[Periodic] = (),
    ) -> None:
        self.health = health
        self.leds = leds
        self.publisher = publisher
        self.runners = runners
        self.health_interval_s = health_interval_s
        self.stall_s = stall_s
        self.tasks = list(tasks)
        self.wedged: list[str] = []

    def stalled(self) -> list[str]:
        """Threads that made no progress within the budget (names, for the log)."""
        now = time.monotonic()
        out = [
            r.driver.name for r in self.runners if not r.alive or now - r.progress > self.stall_s
        ]
        if now - self.publisher.progress > self.stall_s:
            out.append("publisher")
        return out

    def run(self, stop: threading.Event) -> None:
        next_snap = 0.0
        next_health = time.monotonic() + 2.0  # first health once the link had a chance
        for task in self.tasks:
            task.next_at = time.monotonic() + min(task.every_s, 60.0)
        while not stop.is_set():
            self.leds.beat()
            now = time.monotonic()
            if now >= next_snap:
                next_snap = now + 1.0
                snap = self.health.snapshot()
                self.leds.set_network(network_mode(snap))
                self.leds.set_faults(fault_codes(snap))
                self._watchdog(snap)
                if now >= next_health:
                    next_health = now + self.health_interval_s
                    self.publisher.set_retained(self.publisher.topics.health, payloads.health(snap))
                self._housekeeping(now)
            stop.wait(BEAT_S)

    def _watchdog(self, snap: dict[str, Any]) -> None:
        stalled = self.stalled()
        if stalled != self.wedged:
            if stalled:
                log.error("threads stalled: withholding the watchdog ping", threads=stalled)
            self.wedged = stalled
        if not stalled:
            sdnotify.watchdog()
        sdnotify.status(one_line(snap) + (f"; STALLED {','.join(stalled)}" if stalled else ""))

    def _housekeeping(self, now: float) -> None:
        for task in self.tasks:
            if now >= task.next_at:
                task.next_at = now + task.every_s
                if not task.background:
                    _run_task(task)
                elif task.thread is not None and task.thread.is_alive():
                    log.warning("housekeeping still running: this round skipped", task=task.name)
                else:
                    task.thread = threading.Thread(
                        target=_run_task,
                        args=(task,),
                        name=f"housekeeping-{task.name}",
                        daemon=True,
                    )
                    task.thread.start()

    def join_tasks(self, timeout: float) -> list[str]:
        """Wait (bounded) for background tasks at shutdown; the names still running."""
        deadline = time.monotonic() + timeout
        for task in self.tasks:
            if task.thread is not None:
                task.thread.join(max(0.0, deadline - time.monotonic()))
        return [t.name for t in self.tasks if t.thread is not None and t.thread.is_alive()]


def _run_task(task: Periodic) -> None:
    try:
        task.fn()
    except Exception:
        log.exception("housekeeping failed", task=task.name)
