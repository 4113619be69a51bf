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
server serves anything shaped like :class:`ControlTarget` (the daemon), so this module does
not import the composition root that imports it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socketserver
import stat
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from gateway.ops.control_client import (
    ACTION_TIMEOUT_S,
    CONN_IDLE_S,
    GROUP,
    MAX_LINE,
    PULL_TIMEOUT_S,
    RequestError,
    ping,
)

if TYPE_CHECKING:
    from gateway.appliance.health import HealthModel
    from gateway.appliance.leds import Leds
    from gateway.config import Config
    from gateway.pipeline.driver import Clock
    from gateway.pipeline.runner import TerminalRunner
    from gateway.store.db import Store
    from gateway.uplink.publisher import Publisher


class ControlTarget(Protocol):
    """What the control socket needs of the daemon (the composition root provides it)."""

    cfg: Config
    boot_id: str
    clock: Clock
    store: Store
    publisher: Publisher
    health: HealthModel
    leds: Leds
    runners: list[TerminalRunner]


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
        handler = getattr(self, f"_cmd_{cmd}", None) if isinstance(cmd, str) else None
        if handler is None:
            known = ", ".join(sorted(n[5:] for n in dir(self) if n.startswith("_cmd_")))
            return _error(f"unknown command {cmd!r}; expected one of {known}", "unknown_command")
        try:
            return {"ok": True, "result": handler(req)}
        except RequestError as err:
            return _error(str(err), err.kind)
        except Exception as err:  # a bug in one handler must not take the daemon down
            import structlog

            structlog.get_logger(__name__).exception("control request failed", cmd=cmd)
            return _error(f"{type(err).__name__}: {err}", "failed")

    def _cmd_ping(self, _req: dict[str, Any]) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "boot_id": self.daemon.boot_id,
            "config": str(self.daemon.cfg.path) if self.daemon.cfg.path else None,
        }

    def _cmd_status(self, _req: dict[str, Any]) -> dict[str, Any]:
        from gateway.appliance.leds import FAULT_CODES

        snap = dict(self.daemon.health.last or self.daemon.health.snapshot())
        faults = []
        for f in snap.get("faults", []):
            fc = FAULT_CODES.get(int(f["code"]))
            faults.append(
                {**f, "meaning": fc.meaning if fc else None, "fix": fc.fix if fc else None}
            )
        snap["faults"] = faults
        snap["pid"] = os.getpid()
        snap["leds"] = {
            "backend": self.daemon.leds.backend_name,
            "network": self.daemon.leds.network_mode,
            "fault": self.daemon.leds.fault_code,
        }
        return snap

    def _runner(self, req: dict[str, Any]) -> Any:
        name = req.get("terminal")
        if not isinstance(name, str):
            raise RequestError("'terminal' must be a terminal name (a string)")
        for r in self.daemon.runners:
            if r.driver.name == name:
                return r
        names = ", ".join(r.driver.name for r in self.daemon.runners) or "none"
        raise RequestError(f"no terminal named {name!r}; configured: {names}", "not_found")

    def _action(self, req: dict[str, Any], action: str, default_timeout: float) -> Any:
        from concurrent.futures import TimeoutError as FutureTimeout

        runner = self._runner(req)
        timeout = _number(req, "timeout_s", default_timeout)
        fut = runner.submit(action)
        try:
            return dict(fut.result(timeout=timeout))
        except FutureTimeout:
            raise RequestError(
                f"{action} did not finish within {timeout:.0f} s (it goes on in the daemon)",
                "timeout",
            ) from None
        except Exception as err:
            raise RequestError(str(err), "failed") from err

    def _cmd_probe(self, req: dict[str, Any]) -> Any:
        out = self._action(req, "probe", ACTION_TIMEOUT_S)
        st = self._runner(req).state
        out["runner"] = {"state": st.state, "detail": st.detail, "fault": st.fault}
        return out

    def _cmd_sync_clock(self, req: dict[str, Any]) -> Any:
        return self._action(req, "sync_clock", ACTION_TIMEOUT_S)

    def _cmd_pull(self, req: dict[str, Any]) -> Any:
        return self._action(req, "pull", PULL_TIMEOUT_S)

    def _cmd_resend(self, req: dict[str, Any]) -> dict[str, Any]:
        dead = req.get("dead", False)
        if not isinstance(dead, bool):
            raise RequestError("'dead' must be true or false")
        since = None
        if not dead:
            text = req.get("since")
            if not isinstance(text, str):
                raise RequestError("'since' must be an ISO 8601 time (a string)")
            since = _aware(text, "since")
        n = self.daemon.store.requeue(since=since, dead=dead)
        # Issue 13: the rows are below the publisher's cursor; a plain wake left them
        # pending until the next reconnect.
        self.daemon.publisher.wake(rewind=True)
        return {"requeued": n}

    def _cmd_punch(self, req: dict[str, Any]) -> dict[str, Any]:
        from gateway.ops.manual import ManualPunchError, make_manual_punch

        fields = req.get("punch")
        if not isinstance(fields, dict):
            raise RequestError("'punch' must be an object")
        try:
            punch = make_manual_punch(
                fields,
                terminals=[t.name for t in self.daemon.cfg.terminals],
                zone=self.daemon.cfg.gateway.zone,
                now=self.daemon.clock.now(),
            )
        except ManualPunchError as err:
            raise RequestError(str(err)) from None
        from gateway.store.db import DuplicatePunch

        try:
            seq = self.daemon.store.add_manual(punch)
        except DuplicatePunch as err:
            raise RequestError(str(err), "duplicate") from None
        self.daemon.publisher.wake()
        st = self.daemon.publisher.state
        # Issue 12: the CLI must not say "published" while the broker is down.
        return {
            "event_id": punch.event_id,
            "seq": seq,
            "added": 1,
            "via": "daemon",
            "broker_connected": st.connected,
            "broker_detail": st.detail,
        }

    def _cmd_led_test(self, _req: dict[str, Any]) -> dict[str, Any]:
        steps = self.daemon.leds.test_sequence()
        return {
            "steps": [{"label": s.label, "duration_s": s.duration} for s in steps],
            "total_s": round(sum(s.duration for s in steps), 1),
            "backend": self.daemon.leds.backend_name,
        }


def _number(req: dict[str, Any], key: str, default: float) -> float:
    value = req.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 3600:
        raise RequestError(f"'{key}' must be a number of seconds in (0, 3600]")
    return float(value)


def _aware(text: str, key: str) -> datetime:
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise RequestError(f"'{key}': not an ISO 8601 time: {text!r}") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


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
