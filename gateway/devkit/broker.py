"""A private, throwaway Mosquitto broker for tests, benchmarks and ``gatewayctl demo``.

Each :class:`MosquittoBroker` runs its own ``mosquitto`` process on free 127.0.0.1 ports (the
system broker on 1883, if any, is never touched). The ports are chosen once and reused by every
restart, so a client that reconnects to the same port finds the broker again, as it would find
a cloud broker after an outage.

Listeners (notes/store-and-forward.md §5.1, verified with Mosquitto 2.0.11):

* ``port``: plain TCP, anonymous;
* ``auth_port``: plain TCP, ``password_file`` (+ ``acl_file`` if given);
* ``tls_port``: TLS with a server certificate from the test CA (SAN ``localhost`` and
  ``127.0.0.1``); anonymous unless ``tls_auth``; ``tls_require_client_cert`` turns on mTLS.

Mosquitto has no "port 0": a free port is picked in Python, then bound by the broker; when
another process takes it in between, the first start retries with fresh ports.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import structlog

from gateway.devkit.certs import TestPki, make_pki
from gateway.devkit.mosquitto import (
    HOST,
    BrokerError,
    MosquittoMissing,
    accepts,
    find_mosquitto,
    free_ports,
    write_password_file,
)

__all__ = [
    "DEFAULT_USERS",
    "BrokerError",
    "MosquittoBroker",
    "MosquittoMissing",
    "find_mosquitto",
    "free_ports",
    "live_brokers",
]

log = structlog.get_logger(__name__)

#: Users of the password listener when none are given (test credentials, not secrets).
DEFAULT_USERS: dict[str, str] = {"gateway": "gateway-test-password"}

_HOST = HOST
_START_ATTEMPTS = 5
# Strong references: a broker a test forgot must stay findable (leak check, atexit kill).
_live: set[MosquittoBroker] = set()
_live_lock = threading.Lock()


def live_brokers() -> list[MosquittoBroker]:
    """Brokers of this process whose ``mosquitto`` is still running (for leak checks)."""
    with _live_lock:
        running = [b for b in _live if b.is_running]
        _live.intersection_update(running)
    return running


@atexit.register
def _kill_leftovers() -> None:
    # A test run that crashes must not leave brokers behind holding ports.
    with _live_lock:
        brokers = list(_live)
    for broker in brokers:
        broker.kill()


class MosquittoBroker:
    """One private ``mosquitto`` process; see the module docstring for its listeners."""

    def __init__(
        self,
        workdir: Path,
        *,
        plain: bool = True,
        tls: bool = False,
        auth: bool = False,
        users: dict[str, str] | None = None,
        acl: str | None = None,
        tls_auth: bool = False,
        tls_require_client_cert: bool = False,
        certs: TestPki | None = None,
        server_cert: tuple[Path, Path] | None = None,
        message_size_limit: int | None = None,
        max_packet_size: int | None = None,
        persistence: bool = False,
        max_inflight: int | None = None,
        max_queued: int | None = None,
        extra_config: str = "",
        listener_config: str = "",
        start_timeout: float = 20.0,
    ) -> None:
        """Describe the broker; nothing runs until :meth:`start`.

        ``acl`` is the text of a Mosquitto ``acl_file``, applied to the password listener (and
        to TLS when ``tls_auth``). ``max_inflight`` is ``max_inflight_messages``, which
        Mosquitto also advertises as the MQTT 5 Receive Maximum. ``message_size_limit`` caps
        payloads; ``max_packet_size`` caps whole packets (Mosquitto then disconnects the client
        with "Packet too large"). ``persistence`` keeps ``mosquitto.db`` in ``workdir`` across
        restarts (autosaved every second). ``extra_config`` is appended to the general section
        (e.g. ``retain_available false``, which applies globally); ``listener_config`` to every
        listener (e.g. ``max_qos 1``: a listener option; in the general section Mosquitto
        would open a default listener on 1883 for it).
        ``server_cert`` = ``(cert, key)`` replaces the TLS listener's certificate (e.g. an
        expired one from :func:`gateway.devkit.certs.make_server_cert`).
        """
        if not (plain or tls or auth):
            raise BrokerError("a broker needs at least one listener (plain, tls or auth)")
        self.workdir = Path(workdir).resolve()
        self.plain, self.tls, self.auth = plain, tls, auth
        self.users = dict(DEFAULT_USERS if users is None else users)
        self.acl = acl
        self.tls_auth = tls_auth
        self.tls_require_client_cert = tls_require_client_cert
        self._certs = certs
        self.server_cert = server_cert
        self.message_size_limit = message_size_limit
        self.max_packet_size = max_packet_size
        self.persistence = persistence
        self.max_inflight = max_inflight
        self.max_queued = max_queued
        self.extra_config = extra_config
        self.listener_config = listener_config
        self.start_timeout = start_timeout
        self.host = _HOST
        self.config_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"
        self._ports: dict[str, int] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._paused = False
        self._lock = threading.RLock()

    # -- addresses ---------------------------------------------------------------------------

    def _port(self, kind: str, enabled: bool) -> int:
        if not enabled:
            raise BrokerError(f"this broker has no {kind} listener")
        if self._ports is None:
            raise BrokerError("ports are chosen by the first start(); call start() first")
        return self._ports[kind]

    @property
    def port(self) -> int:
        """The plain anonymous listener."""
        return self._port("plain", self.plain)

    @property
    def auth_port(self) -> int:
        """The plain password (+ ACL) listener."""
        return self._port("auth", self.auth)

    @property
    def tls_port(self) -> int:
        """The TLS listener."""
        return self._port("tls", self.tls)

    @property
    def pki(self) -> TestPki:
        """The test PKI (created in ``workdir/certs`` unless one was given)."""
        if self._certs is None:
            self._certs = make_pki(self.workdir / "certs")
        return self._certs

    @property
    def ca_file(self) -> Path:
        return self.pki.ca_cert

    @property
    def client_cert(self) -> Path:
        return self.pki.client_cert

    @property
    def client_key(self) -> Path:
        return self.pki.client_key

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def is_running(self) -> bool:
        """True while the process exists (also when paused)."""
        return self._proc is not None and self._proc.poll() is None

    def log_text(self) -> str:
        """Everything the broker wrote to stderr (all runs, appended)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- config ------------------------------------------------------------------------------

    def _write_files(self) -> None:
        assert self._ports is not None
        self.workdir.mkdir(parents=True, exist_ok=True)
        general = [
            "per_listener_settings true",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "log_timestamp_format %H:%M:%S",
        ]
        if os.geteuid() == 0:
            # Started as root Mosquitto drops to user "mosquitto", which cannot read files in a
            # root-owned scratch directory (notes/store-and-forward.md §5.1).
            general.append("user root")
        if self.persistence:
            general += ["persistence true", f"persistence_location {self.workdir}/",
                        "autosave_interval 1"]  # fmt: skip
        else:
            general.append("persistence false")
        if self.message_size_limit is not None:
            general.append(f"message_size_limit {self.message_size_limit}")
        if self.max_packet_size is not None:
            general.append(f"max_packet_size {self.max_packet_size}")
        if self.max_inflight is not None:
            general.append(f"max_inflight_messages {self.max_inflight}")
        if self.max_queued is not None:
            general.append(f"max_queued_messages {self.max_queued}")
        if self.extra_config:
            general.append(self.extra_config.strip())

        needs_passwords = self.auth or (self.tls and self.tls_auth)
        password_file = self.workdir / "passwd"
        acl_file = self.workdir / "acl"
        if needs_passwords:
            write_password_file(password_file, self.users)
            if self.acl is not None:
                acl_file.write_text(self.acl if self.acl.endswith("\n") else self.acl + "\n")

        def secured() -> list[str]:
            lines = ["allow_anonymous false", f"password_file {password_file}"]
            if self.acl is not None:
                lines.append(f"acl_file {acl_file}")
            return lines

        listeners: list[str] = []
        if self.plain:
            listeners += ["", f"listener {self._ports['plain']} {_HOST}", "allow_anonymous true"]
        if self.auth:
            listeners += ["", f"listener {self._ports['auth']} {_HOST}", *secured()]
        if self.tls:
            pki = self.pki
            cert, key = self.server_cert or (pki.server_cert, pki.server_key)
            listeners += [
                "",
                f"listener {self._ports['tls']} {_HOST}",
                f"cafile {pki.ca_cert}",
                f"certfile {cert}",
                f"keyfile {key}",
                "tls_version tlsv1.2",
            ]
            if self.tls_require_client_cert:
                listeners.append("require_certificate true")
            listeners += secured() if self.tls_auth else ["allow_anonymous true"]
        if self.listener_config:
            per_listener = self.listener_config.strip().splitlines()
            blocks = "\n".join(listeners).split("\n\n")
            listeners = "\n\n".join(b + "\n" + "\n".join(per_listener) for b in blocks).split("\n")
        self.config_path.write_text("\n".join(general + listeners) + "\n")

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the broker and wait until every listener accepts TCP connections."""
        with self._lock:
            if self.is_running:
                return self
            first = self._ports is None
            attempts = _START_ATTEMPTS if first else 1
            for attempt in range(1, attempts + 1):
                if first:
                    kinds = [k for k, on in (("plain", self.plain), ("auth", self.auth),
                                             ("tls", self.tls)) if on]  # fmt: skip
                    self._ports = dict(zip(kinds, free_ports(len(kinds)), strict=True))
                try:
                    self._spawn()
                    return self
                except _PortTaken:
                    log.warning("broker_port_taken", ports=self._ports, attempt=attempt)
                    if not first:
                        raise BrokerError(
                            f"cannot restart the broker: a port of {self._ports} is now used "
                            f"by another process\n{self._log_tail()}"
                        ) from None
            raise BrokerError(f"no free ports after {attempts} attempts\n{self._log_tail()}")

    def _spawn(self) -> None:
        assert self._ports is not None
        self._write_files()
        mark = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log_file:
            self._proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                [find_mosquitto(), "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                cwd=self.workdir, start_new_session=True,
            )  # fmt: skip
        self._paused = False
        with _live_lock:
            _live.add(self)
        deadline = time.monotonic() + self.start_timeout
        pending = set(self._ports.values())
        while True:
            if self._proc.poll() is not None:
                text = self.log_text()[mark:]
                if "Address already in use" in text:
                    raise _PortTaken
                raise BrokerError(
                    f"mosquitto exited with status {self._proc.returncode} on start:\n{text}"
                )
            # A port counts once mosquitto says it opened it (so another process that grabbed
            # the port cannot pass for us) and it accepts a connection.
            opened = self.log_text()[mark:]
            for port in list(pending):
                if f"listen socket on port {port}." in opened and accepts(self.host, port):
                    pending.discard(port)
            # "running" is logged after every listener is bound: until then a bind may still fail.
            if not pending and " running" in opened:
                log.debug("broker_started", pid=self._proc.pid, ports=self._ports)
                return
            if time.monotonic() > deadline:
                self.kill()
                raise BrokerError(
                    f"mosquitto did not open {sorted(pending)} within {self.start_timeout} s:\n"
                    + self.log_text()[mark:]
                )
            time.sleep(0.02)

    def _log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop (SIGTERM, then SIGKILL after ``timeout``); a no-op when not running."""
        with self._lock:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                return
            proc.send_signal(signal.SIGTERM)
            if self._paused:
                proc.send_signal(signal.SIGCONT)  # a stopped process handles SIGTERM only now
                self._paused = False
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            self._forget()

    def kill(self) -> None:
        """SIGKILL: a broker crash (no clean disconnect, no persistence save)."""
        with self._lock:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                return
            proc.kill()
            proc.wait()
            self._paused = False
            self._forget()

    def _forget(self) -> None:
        with _live_lock:
            _live.discard(self)

    def restart(self, *, hard: bool = False) -> Self:
        """Stop (SIGTERM, or SIGKILL when ``hard``) and start again on the same ports."""
        with self._lock:
            self.kill() if hard else self.stop()
            return self.start()

    def pause(self) -> None:
        """SIGSTOP: a hung broker; connections stay open but nothing is answered."""
        with self._lock:
            if not self.is_running:
                raise BrokerError("broker is not running")
            assert self._proc is not None
            self._proc.send_signal(signal.SIGSTOP)
            self._paused = True

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                self._proc.send_signal(signal.SIGCONT)
            self._paused = False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        return f"<MosquittoBroker {state} ports={self._ports} workdir={self.workdir}>"


class _PortTaken(Exception):
    pass
