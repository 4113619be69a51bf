"""The client half of the control socket: how ``gatewayctl`` talks to the running daemon.

One JSON object per line in each direction: ``{"cmd": "status"}`` → ``{"ok": true,
"result": {...}}`` or ``{"ok": false, "error": "...", "kind": "..."}``. The server half is
:mod:`gateway.appliance.control_server`; the constants here are the protocol both share.

It imports nothing heavy: ``gatewayctl status`` uses it and must start fast on a Pi 3.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any

MAX_LINE = 64 * 1024  # a request is a few hundred bytes; anything this long is garbage
CONN_IDLE_S = 30.0  # a client that sends nothing for this long is dropped
ACTION_TIMEOUT_S = 30.0  # probe / sync_clock, unless the request says otherwise
PULL_TIMEOUT_S = 900.0  # a ZK terminal with 100 000 records takes minutes over 10 Mbit/s
GROUP = "attgw"
ACTIONS = ("pull", "sync_clock", "probe")


class DaemonUnreachable(Exception):
    """Nobody answers on the control socket (daemon stopped, or no permission)."""


class RequestError(Exception):
    """A request the daemon refuses; ``kind`` says why (bad_request, not_found, ...)."""

    def __init__(self, message: str, kind: str = "bad_request") -> None:
        super().__init__(message)
        self.kind = kind


# -- calls ------------------------------------------------------------------------------------
def call(path: str | os.PathLike[str], request: dict[str, Any], timeout: float = 10.0) -> Any:
    """Send one request; return ``result`` or raise ``RequestError`` / ``DaemonUnreachable``."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(os.fspath(path))
        except FileNotFoundError:
            raise DaemonUnreachable(f"no control socket at {path}") from None
        except PermissionError:
            raise DaemonUnreachable(
                f"permission denied on {path}: run as root or a member of group {GROUP}"
            ) from None
        except OSError as err:  # ECONNREFUSED: a stale socket file, the daemon is gone
            raise DaemonUnreachable(f"{path}: {err.strerror or err}") from None
        sock.sendall(json.dumps(request).encode() + b"\n")
        buf = bytearray()
        while not buf.endswith(b"\n"):
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                raise RequestError(
                    f"the daemon did not answer within {timeout:.0f} s", "timeout"
                ) from None
            if not chunk:
                raise DaemonUnreachable("the daemon closed the connection")
            buf += chunk
    finally:
        sock.close()
    reply = json.loads(buf)
    if not reply.get("ok"):
        raise RequestError(str(reply.get("error")), str(reply.get("kind", "failed")))
    return reply.get("result")


def ping(path: str | os.PathLike[str], timeout: float = 3.0) -> dict[str, Any] | None:
    """The daemon's pid and boot id, or None when no daemon answers."""
    try:
        result = call(path, {"cmd": "ping"}, timeout)
    except (DaemonUnreachable, RequestError, ValueError):
        return None
    return result if isinstance(result, dict) else None
