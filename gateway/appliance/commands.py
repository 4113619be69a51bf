"""What the running daemon can be asked, one implementation for two doors (issue 16): the
control socket (``gatewayctl`` on the Pi, :mod:`gateway.appliance.control_server`) and
signed remote commands over MQTT (:mod:`gateway.remote.service`).

Every handler takes the request's parameters as a dict (the control socket's JSON line, a
remote envelope's ``args``) and returns something JSON-able, or raises
:class:`~gateway.ops.control_client.RequestError` with a clear message and a ``kind``.
Parameters are untrusted on both doors: each handler checks its own.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from gateway.ops.control_client import ACTION_TIMEOUT_S, PULL_TIMEOUT_S, RequestError

if TYPE_CHECKING:
    from gateway.appliance.health import HealthModel
    from gateway.appliance.leds import Leds
    from gateway.config import Config
    from gateway.pipeline.driver import Clock
    from gateway.pipeline.runner import TerminalRunner
    from gateway.store.db import Store
    from gateway.uplink.publisher import Publisher

Handler = Callable[[dict[str, Any]], Any]
EXPORT_MAX = 5000  # punches per export answer (a remote result is one MQTT message set)
LOG_LEVELS = ("debug", "info", "warning", "error")


class ControlTarget(Protocol):
    """What the handlers need of the daemon (the composition root provides it)."""

    cfg: Config
    boot_id: str
    clock: Clock
    store: Store
    publisher: Publisher
    health: HealthModel
    leds: Leds
    runners: list[TerminalRunner]


class Commands:
    """The handlers, bound to one daemon; :meth:`table` maps request names to them."""

    def __init__(self, daemon: ControlTarget) -> None:
        self.daemon = daemon

    def table(self) -> dict[str, Handler]:
        """Every handler by its control-socket name (remote verbs map onto these)."""
        return {
            "ping": self.ping,
            "status": self.status,
            "probe": self.probe,
            "sync_clock": self.sync_clock,
            "pull": self.pull,
            "resend": self.resend,
            "punch": self.punch,
            "led_test": self.led_test,
            "doctor": self.doctor,
            "terminals": self.terminals,
            "export": self.export,
            "log_level": self.log_level,
            "bundle": self.bundle,
        }

    # -- reading -----------------------------------------------------------------------------
    def ping(self, _req: dict[str, Any]) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "boot_id": self.daemon.boot_id,
            "config": str(self.daemon.cfg.path) if self.daemon.cfg.path else None,
        }

    def status(self, _req: dict[str, Any]) -> dict[str, Any]:
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
        remote = getattr(self.daemon, "remote", None)  # issue 16: what was refused, counted
        if remote is not None:
            snap["remote"] = {"topic": remote.req_topic, "counts": dict(remote.counts)}
        return snap

    def terminals(self, _req: dict[str, Any]) -> dict[str, Any]:
        snap = self.daemon.health.last or self.daemon.health.snapshot()
        return {"terminals": snap.get("terminals", {})}

    def doctor(self, _req: dict[str, Any]) -> dict[str, Any]:
        """The doctor's checks as seen from inside the daemon (its own snapshot)."""
        from gateway.ops.checks import exit_code, summary
        from gateway.ops.doctor import run_checks

        checks = run_checks(self.daemon.cfg, daemon=self.ping({}), snapshot=self.status({}))
        code = exit_code(checks)
        return {
            "ok": code == 0,
            "exit": code,
            "summary": summary(checks),
            "failing": [c.name for c in checks if c.status == "FAIL"],
            "warnings": [c.name for c in checks if c.status == "WARN"],
            "checks": [c.as_dict() for c in checks],
        }

    def export(self, req: dict[str, Any]) -> dict[str, Any]:
        """Punches received since ``since`` (every status), oldest first, at most ``limit``."""
        import json

        from gateway.store.db import iso_utc

        since = _aware(_text(req, "since"), "since")
        limit = req.get("limit", 1000)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= EXPORT_MAX:
            raise RequestError(f"'limit' must be an integer in 1..{EXPORT_MAX}")
        rows = self.daemon.store.query(
            "SELECT seq, record, received_at, status, delivered_at, dead_reason FROM punches"
            " WHERE received_at >= ? ORDER BY seq LIMIT ?",
            (iso_utc(since), limit + 1),
        )
        status = {0: "pending", 1: "delivered", 2: "dead"}
        punches = [
            {
                **json.loads(rec),
                "received_at": received,
                "status": status.get(st, st),
                "delivered_at": delivered,
                "dead_reason": dead,
            }
            for _seq, rec, received, st, delivered, dead in rows[:limit]
        ]
        return {"since": since.isoformat(), "count": len(punches), "truncated": len(rows) > limit,
                "punches": punches}  # fmt: skip

    def bundle(self, _req: dict[str, Any]) -> dict[str, Any]:
        """What ``gatewayctl bundle`` gathers, as one JSON object (remote support)."""
        from gateway.ops.support import journal, redact, versions
        from gateway.remote.ledger import recent

        parts: dict[str, Callable[[], Any]] = {
            "config": lambda: (
                redact(self.daemon.cfg.path.read_text(errors="replace"))
                if self.daemon.cfg.path
                else None
            ),
            "status": lambda: self.status({}),
            "doctor": lambda: self.doctor({}),
            "store": self.daemon.store.figures,
            "remote_audit": lambda: recent(self.daemon.store, 200),
            "journal": journal,
            "versions": versions,
        }
        out: dict[str, Any] = {}
        for name, fn in parts.items():
            try:
                out[name] = fn()
            except Exception as err:  # one broken part must not lose the others
                out[name + "_error"] = f"{type(err).__name__}: {err}"
        return out

    # -- acting ------------------------------------------------------------------------------
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

    def probe(self, req: dict[str, Any]) -> Any:
        out = self._action(req, "probe", ACTION_TIMEOUT_S)
        st = self._runner(req).state
        out["runner"] = {"state": st.state, "detail": st.detail, "fault": st.fault}
        return out

    def sync_clock(self, req: dict[str, Any]) -> Any:
        return self._action(req, "sync_clock", ACTION_TIMEOUT_S)

    def pull(self, req: dict[str, Any]) -> Any:
        return self._action(req, "pull", PULL_TIMEOUT_S)

    def resend(self, req: dict[str, Any]) -> dict[str, Any]:
        dead = req.get("dead", False)
        if not isinstance(dead, bool):
            raise RequestError("'dead' must be true or false")
        since = None
        if not dead:
            since = _aware(_text(req, "since"), "since")
        n = self.daemon.store.requeue(since=since, dead=dead)
        # Issue 13: the rows are below the publisher's cursor; a plain wake left them
        # pending until the next reconnect.
        self.daemon.publisher.wake(rewind=True)
        return {"requeued": n}

    def punch(self, req: dict[str, Any]) -> dict[str, Any]:
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

    def log_level(self, req: dict[str, Any]) -> dict[str, Any]:
        """The daemon's log level until the next restart (the unit's default comes back)."""
        import logging

        level = _text(req, "level").lower()
        if level not in LOG_LEVELS:
            raise RequestError(f"'level' must be one of {', '.join(LOG_LEVELS)}")
        root = logging.getLogger()
        was = logging.getLevelName(root.level).lower()
        root.setLevel(level.upper())
        return {"level": level, "was": was}

    def led_test(self, _req: dict[str, Any]) -> dict[str, Any]:
        steps = self.daemon.leds.test_sequence()
        return {
            "steps": [{"label": s.label, "duration_s": s.duration} for s in steps],
            "total_s": round(sum(s.duration for s in steps), 1),
            "backend": self.daemon.leds.backend_name,
        }


def _text(req: dict[str, Any], key: str) -> str:
    value = req.get(key)
    if not isinstance(value, str):
        raise RequestError(f"'{key}' must be a string")
    return value


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
