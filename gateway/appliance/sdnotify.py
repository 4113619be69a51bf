"""systemd's notify protocol in pure Python (no libsystemd).

``$NOTIFY_SOCKET`` names an AF_UNIX datagram socket: a path, or an abstract name written with
a leading ``@``. A message is newline-separated ``KEY=VALUE`` lines. systemd documents the
protocol as independently re-implementable (notes/pi-serial-gpio-systemd.md §3.1).

Every function is a no-op outside systemd (no ``$NOTIFY_SOCKET``) and never raises: a failed
send is logged once per process, because the daemon must keep collecting punches even if it
cannot talk to its supervisor.
"""

from __future__ import annotations

import os
import socket
import threading

import structlog

log = structlog.get_logger(__name__)

_warned = False
_warn_lock = threading.Lock()


def _address(raw: str) -> str | None:
    if raw.startswith("/"):
        return raw
    if raw.startswith("@") and len(raw) > 1:
        return "\0" + raw[1:]  # Linux abstract namespace
    return None  # e.g. "vsock:" (systemd >= 254): not supported, treat as absent


def _warn_once(event: str, **fields: object) -> None:
    global _warned  # noqa: PLW0603 - one warning per process, by design
    with _warn_lock:
        if _warned:
            return
        _warned = True
    log.warning(event, **fields)


def _one_line(text: str) -> str:
    # A newline inside a value would start a new KEY=VALUE assignment.
    return " ".join(text.split("\n")).strip()


def send(message: str) -> bool:
    """Send a raw notify message. True if it went out, False if not under systemd or failed."""
    raw = os.environ.get("NOTIFY_SOCKET", "")
    if not raw:
        return False
    address = _address(raw)
    if address is None:
        _warn_once("sd_notify_unsupported_socket", notify_socket=raw)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode("utf-8"))
    except OSError as err:
        _warn_once("sd_notify_failed", notify_socket=raw, error=str(err))
        return False
    return True


def notify(**fields: object) -> bool:
    """Send ``KEY=VALUE`` fields, e.g. ``notify(READY=1, STATUS="ok")``."""
    if not fields:
        return False
    return send("\n".join(f"{key}={_one_line(str(value))}" for key, value in fields.items()))


def ready(status: str | None = None) -> bool:
    """Start-up is complete (``Type=notify`` units count as started only now)."""
    return notify(READY=1, STATUS=status) if status else notify(READY=1)


def watchdog() -> bool:
    """Ping the watchdog. Call only after checking that every worker made progress."""
    return notify(WATCHDOG=1)


def watchdog_trigger() -> bool:
    """Ask systemd to act as if the watchdog expired (a fatal, self-detected hang)."""
    return notify(WATCHDOG="trigger")


def status(text: str) -> bool:
    """One line for ``systemctl status``."""
    return notify(STATUS=text)


def stopping(status: str | None = None) -> bool:
    """Shutdown has begun."""
    return notify(STOPPING=1, STATUS=status) if status else notify(STOPPING=1)


def extend_timeout(seconds: float) -> bool:
    """Ask for ``seconds`` more to finish starting or stopping (e.g. a long migration)."""
    return notify(EXTEND_TIMEOUT_USEC=int(seconds * 1_000_000))


def watchdog_interval() -> float | None:
    """How often to ping, in seconds (half of ``WatchdogSec=``); None if no watchdog is set.

    ``WATCHDOG_PID``, when present, must be this process: a child that inherited the
    environment must not ping on the parent's behalf.
    """
    usec, pid = os.environ.get("WATCHDOG_USEC"), os.environ.get("WATCHDOG_PID")
    try:
        if not usec or int(usec) <= 0:
            return None
        if pid and int(pid) != os.getpid():
            return None
        return int(usec) / 2_000_000
    except ValueError:
        _warn_once("sd_watchdog_env_invalid", watchdog_usec=usec, watchdog_pid=pid)
        return None
