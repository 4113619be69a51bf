"""The control socket's server half: how the running daemon answers ``gatewayctl``.

A Unix stream socket at ``[gateway] control_socket`` (mode 0660, group ``attgw`` when that
group exists). One JSON object per line in each direction: ``{"cmd": "status"}`` →
``{"ok": true, "result": {...}}`` or ``{"ok": false, "error": "...", "kind": "..."}``.

Requests: ``ping``, ``status`` (the supervisor's health snapshot), ``pull`` / ``sync_clock``
/ ``probe`` (a terminal action run on that terminal's runner thread), ``resend``
(``store.requeue`` + wake the publisher), ``punch`` (a manual punch through the daemon, so it
is published like any other) and ``led_test``.

Hostile or broken input must never hurt the daemon (issue 6): a line longer than
:data:`MAX_LINE` is refused, a non-JSON line or an unknown command gets an error object,
every connection has an idle timeout, and a handler exception becomes an error reply.

The client half and the protocol's constants are :mod:`gateway.ops.control_client`. The
handlers are :mod:`gateway.appliance.commands` (issue 16: remote commands over MQTT run the
same ones); this module is the socket around them. It serves anything shaped like
:class:`ControlTarget` (the daemon), so it does not import the composition root.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socketserver
import stat
import threading
from pathlib import Path
from typing import Any

from gateway.appliance.commands import Commands, ControlTarget
from gateway.ops.control_client import CONN_IDLE_S, GROUP, MAX_LINE, RequestError, ping

__all__ = ["SOCKET_COMMANDS", "ControlServer", "ControlTarget"]

#: What the socket serves (the remote-only handlers, e.g. ``bundle``, stay off it: the
#: technician on the Pi has ``gatewayctl bundle`` for that).
SOCKET_COMMANDS = ("ping", "status", "probe", "sync_clock", "pull", "resend", "punch", "led_test")


# -- server ----------------------------------------------------------------------------------
class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    allow_reuse_address = False
    control: ControlServer


class _Handler(socketserver.StreamRequestHandler):
    timeout = CONN_IDLE_S  # applied to the connection socket by StreamRequestHandler.setup

    def handle(self) -> None:
        threading.current_thread().name = "control-conn"
        server: _Server = self.server  # type: ignore[assignment]
        while True:
            try:
                line = self.rfile.readline(MAX_LINE + 1)
            except (TimeoutError, OSError):
                return  # idle or vanished client: drop it, nothing else to do
            if not line:
                return
            if len(line) > MAX_LINE and not line.endswith(b"\n"):
                self._reply(_error(f"request longer than {MAX_LINE} bytes", "bad_request"))
                return  # the rest of the line is unread: the stream is out of sync
            reply = server.control.handle_line(line)
            if not self._reply(reply):
                return

    def _reply(self, obj: dict[str, Any]) -> bool:
        try:
            self.wfile.write(json.dumps(obj, default=str).encode() + b"\n")
            self.wfile.flush()
        except OSError:
            return False
        return True


def _error(message: str, kind: str) -> dict[str, Any]:
    return {"ok": False, "error": message, "kind": kind}


class ControlServer:
    """Serves the control socket for one daemon (see :class:`ControlTarget`)."""

    def __init__(self, daemon: ControlTarget, path: str | os.PathLike[str]) -> None:
        self.daemon = daemon
        self.path = Path(path)
        table = Commands(daemon).table()
        self._handlers = {name: table[name] for name in SOCKET_COMMANDS}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        import structlog

        log = structlog.get_logger(__name__)
        try:
            self._prepare_path()
            server = _Server(os.fspath(self.path), _Handler, bind_and_activate=False)
            server.control = self
            server.server_bind()
            _set_mode(self.path)
            server.server_activate()
        except (OSError, RuntimeError) as err:
            # The gateway's job is punches: without the socket it still runs; `gatewayctl`
            # then says the daemon is unreachable and doctor names the cause in the log.
            log.error("control socket unavailable", path=str(self.path), error=str(err))
            return
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.5},
            name="control",
            daemon=True,
        )
        self._thread.start()
        log.info("control socket listening", path=str(self.path))

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _prepare_path(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists() and not self.path.is_symlink():
            return
        if not stat.S_ISSOCK(self.path.lstat().st_mode):
            raise RuntimeError(f"{self.path} exists and is not a socket")
        if ping(self.path, timeout=1.0) is not None:
            raise RuntimeError(f"another gateway daemon answers on {self.path}")
        self.path.unlink()  # stale: left by a daemon that was killed

    # -- dispatch ----------------------------------------------------------------------------
    def handle_line(self, line: bytes) -> dict[str, Any]:
        try:
            req = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            return _error("not a JSON object: send one JSON object per line", "bad_request")
        if not isinstance(req, dict):
            return _error("not a JSON object: send one JSON object per line", "bad_request")
        cmd = req.get("cmd")
        handler = self._handlers.get(cmd) if isinstance(cmd, str) else None
        if handler is None:
            known = ", ".join(sorted(self._handlers))
            return _error(f"unknown command {cmd!r}; expected one of {known}", "unknown_command")
        try:
            return {"ok": True, "result": handler(req)}
        except RequestError as err:
            return _error(str(err), err.kind)
        except Exception as err:  # a bug in one handler must not take the daemon down
            import structlog

            structlog.get_logger(__name__).exception("control request failed", cmd=cmd)
            return _error(f"{type(err).__name__}: {err}", "failed")


def _set_mode(path: Path) -> None:
    """0660, group attgw when it exists: the technician joins the group, nobody else."""
    os.chmod(path, 0o660)  # nosec B103 # PRODUCT.md §2: the socket is 0660, group attgw
    try:
        import grp

        gid = grp.getgrnam(GROUP).gr_gid
    except KeyError:
        return
    try:
        os.chown(path, -1, gid)
    except OSError as err:  # not a member of the group (a developer's machine): keep going
        if err.errno not in (errno.EPERM, errno.EACCES):
            raise
