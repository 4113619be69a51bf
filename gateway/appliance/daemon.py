"""``gatewayctl run``: the composition root. It builds the parts, wires them, and stops them
in order. It holds no logic of its own beyond that order.

Shutdown (SIGTERM/SIGINT), well inside systemd's 20 s: stop the runners (nothing new comes
in), let the publisher drain what is in flight for a bounded time, publish ``offline``,
disconnect, close the store, turn the LEDs off, tell systemd.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import structlog

from gateway.appliance import sdnotify, sysinfo
from gateway.appliance.control_server import ControlServer
from gateway.appliance.health import HealthModel
from gateway.appliance.leds import Leds, make_backend
from gateway.appliance.supervisor import Periodic, Supervisor
from gateway.config import Config
from gateway.pipeline import registry
from gateway.pipeline.driver import Clock, DriverContext, SystemClock
from gateway.pipeline.ids import uuid7
from gateway.pipeline.runner import TerminalRunner, TerminalState
from gateway.store import backup
from gateway.store.guard import StorageGuard, open_store
from gateway.store.lock import StoreLock, StoreLocked
from gateway.uplink.payloads import terminal_status
from gateway.uplink.publisher import Publisher
from gateway.uplink.tls_watch import TlsWatch

if TYPE_CHECKING:
    from gateway.remote.service import RemoteService

log = structlog.get_logger(__name__)

RUNNER_STOP_S = 6.0
DRAIN_S = 5.0


class Daemon:
    """Everything the running gateway is made of (also what the control socket serves)."""

    def __init__(self, cfg: Config, *, clock: Clock | None = None) -> None:
        self.cfg = cfg
        self.clock = clock or SystemClock()
        self.boot_id = str(uuid7())
        self.stop_event = threading.Event()
        self.time_sync = sysinfo.make_time_sync(cfg.gateway.time_sync)
        ctx = DriverContext(
            cfg.gateway.id, cfg.gateway.zone, self.clock, self.time_sync, str(cfg.gateway.data_dir)
        )
        # Issue 13: held for the daemon's life; `gatewayctl restore` refuses while it is held.
        self.lock = StoreLock(cfg.gateway.data_dir).acquire()
        try:
            self._build(cfg, ctx)
        except BaseException:
            self.lock.release()
            raise

    def _build(self, cfg: Config, ctx: DriverContext) -> None:
        # Issue 7: a corrupt database is moved aside and a fresh store started (fault 4).
        self.store, self.quarantine = open_store(cfg.db_path, clock=self.clock)
        self.storage_guard = StorageGuard(self.store)
        self.tls_watch = TlsWatch()  # a refused TLS handshake is fault 6
        self.publisher = Publisher(
            cfg.mqtt,
            cfg.gateway.id,
            self.store,
            boot_id=self.boot_id,
            clock=self.clock,
            link_factory=self.tls_watch.link_factory,
            time_sync=self.time_sync,  # issue 19: signed cloud logins wait for NTP (fault 5)
        )
        self.leds = Leds(
            make_backend(cfg.leds.backend),
            cfg.leds.heartbeat_pin,
            cfg.leds.network_pin,
            cfg.leds.fault_pin,
        )
        self.health = HealthModel(
            gateway_id=cfg.gateway.id,
            boot_id=self.boot_id,
            store=self.store,
            publisher=self.publisher,
            terminals=lambda: [r.state for r in self.runners],
            time_sync=self.time_sync,
            clock=self.clock,
            data_dir=str(cfg.gateway.data_dir),
            min_free_disk_mb=cfg.store.min_free_disk_mb,
            store_fault=self.storage_guard.fault,
            link_fault=self.tls_watch.fault,
        )
        self.runners = [
            TerminalRunner(
                registry.load(t.driver)(t.name, t.options, ctx),
                self.store,
                clock=self.clock,
                on_change=self._terminal_changed,
                on_commit=lambda _n: self.publisher.wake(),
                may_pull=lambda d: not (d.keeps_log and self.health.disk_low()),
            )
            for t in cfg.terminals
        ]
        self.supervisor = Supervisor(
            health=self.health,
            leds=self.leds,
            publisher=self.publisher,
            runners=self.runners,
            health_interval_s=cfg.gateway.health_interval_s,
            stall_s=cfg.gateway.watchdog_stall_s,
            tasks=[
                Periodic(  # off the supervisor thread, own connection (issue 12/13)
                    "prune",
                    3600.0,
                    lambda: self.store.prune(
                        cfg.store.retain_delivered_days, should_stop=self.stop_event.is_set
                    ),
                    background=True,
                ),
                *self._backup_tasks(),
            ],
        )
        self.control = ControlServer(self, cfg.gateway.control_socket)
        self.remote = self._remote() if cfg.remote.enabled else None  # issue 16: off by default
        self.adms = self._adms_listener()

    def _remote(self) -> RemoteService | None:
        from gateway.appliance.commands import Commands
        from gateway.remote.service import RemoteService

        base = self.publisher.topics.command_base
        if base is None:
            log.error(
                "remote support is off: this cloud profile has no topic a device may subscribe "
                "to for commands (docs/remote.md)",
                profile=self.cfg.mqtt.profile,
            )
            return None
        return RemoteService(
            self.cfg.remote,
            gateway_id=self.cfg.gateway.id,
            topic_base=base.removesuffix("/cmd"),
            handlers=Commands(self).table(),  # the control socket's handlers, one implementation
            store=self.store,
            publisher=self.publisher,
            clock=self.clock,
            time_sync=self.time_sync,
        )

    def _adms_listener(self) -> Any:
        """Issue 15: the push terminals' HTTP listener, when ``[adms]`` is configured."""
        if self.cfg.adms is None:
            return None
        from drivers.adms.hub import HUB
        from drivers.adms.listener import AdmsListener

        HUB.load(self.cfg.gateway.data_dir)
        return AdmsListener(self.cfg.adms, HUB, zone=self.cfg.gateway.zone)

    def _backup_tasks(self) -> list[Periodic]:
        """Automatic backups every ``backup_interval_h`` (0 = off), keeping ``backup_keep``."""
        s = self.cfg.store
        if s.backup_interval_h <= 0 or s.backup_keep <= 0:
            return []
        return [
            Periodic(  # issue 18: checked hourly; a copy only when due and the store changed
                "backup",
                min(s.backup_interval_h * 3600.0, 3600.0),
                lambda: backup.automatic(
                    self.store, self.cfg.gateway.data_dir, s.backup_keep, s.backup_interval_h
                ),
                background=True,  # its own read connection: writers go on (issue 12/13)
            )
        ]

    def _terminal_changed(self, st: TerminalState) -> None:
        topic = self.publisher.topics.terminal_status(st.name)
        state = st.state if st.state in ("online", "offline", "fault") else "fault"
        self.publisher.set_retained(
            topic,
            terminal_status(
                state, st.detail, st.since or self.clock.now(), {"fault_code": st.fault}
            ),
        )

    def run(self) -> int:
        self.leds.start()
        self.publisher.start()
        for r in self.runners:
            r.start()
        if self.adms is not None:
            self.adms.start()
        self.control.start()
        if self.remote is not None:
            self.remote.start()
        sdnotify.ready("started: store open, drivers running")
        log.info(
            "gateway running",
            gateway=self.cfg.gateway.id,
            boot_id=self.boot_id,
            terminals=[t.name for t in self.cfg.terminals],
            db=str(self.cfg.db_path),
        )
        try:
            self.supervisor.run(self.stop_event)
        finally:
            self.shutdown()
        return 0

    def shutdown(self) -> None:
        t0 = time.monotonic()
        sdnotify.stopping("stopping: runners, then drain, then offline")
        log.info("stopping")
        self.control.stop()  # technicians' requests end first: they touch every part
        if self.adms is not None:
            self.adms.stop()  # push terminals: uploads not yet committed are answered 503
        if self.remote is not None:
            self.remote.stop()
        for r in self.runners:  # all at once: a slow terminal must not hold up the others
            r.request_stop()
        deadline = time.monotonic() + RUNNER_STOP_S
        for r in self.runners:
            r.stop(max(0.0, deadline - time.monotonic()))
        self.publisher.stop(drain_timeout=DRAIN_S)
        busy = self.supervisor.join_tasks(2.0)  # prune stops between chunks; a backup's
        if busy:  # temporary file is removed by the next one
            log.warning("housekeeping still running at exit", tasks=busy)
        self.store.close()
        self.leds.stop()
        self.lock.release()
        log.info("stopped", took_s=round(time.monotonic() - t0, 2))


def run(cfg: Config) -> int:
    """Run until SIGTERM/SIGINT; return the exit status."""
    Path(cfg.gateway.data_dir).mkdir(parents=True, exist_ok=True)
    try:
        daemon = Daemon(cfg)
    except StoreLocked as err:  # a second daemon, or a restore in progress: never both
        log.error("cannot start: the data directory is locked", error=str(err))
        print(f"gatewayctl run: {err}", file=sys.stderr)
        return 1

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal received", signal=signal.Signals(signum).name)
        daemon.stop_event.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return daemon.run()
