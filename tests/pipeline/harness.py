"""Run the real daemon (``python -m gateway run``) as a child process, for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "docs" / "schema"


def _registry() -> Registry:
    reg: Registry = Registry()
    for p in SCHEMA_DIR.glob("*.json"):
        doc = json.loads(p.read_text())
        reg = reg.with_resource(doc["$id"], Resource.from_contents(doc))
        reg = reg.with_resource(p.name, Resource.from_contents(doc))
    return reg


REGISTRY = _registry()


def validate(payload: Any, schema: str) -> None:
    """Validate ``payload`` against ``docs/schema/<schema>`` (raises on mismatch)."""
    doc = json.loads((SCHEMA_DIR / schema).read_text())
    jsonschema.Draft202012Validator(
        doc, registry=REGISTRY, format_checker=jsonschema.FormatChecker()
    ).validate(payload)


def toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(toml(v) for v in value) + "]"
    return json.dumps(value)


def write_config(path: Path, *, gateway: dict[str, Any], mqtt: dict[str, Any],
                 terminals: list[dict[str, Any]], store: dict[str, Any] | None = None,
                 leds: dict[str, Any] | None = None) -> Path:
    gw = {"id": "gw-test", "timezone": "Asia/Shanghai", "time_sync": "assume",
          "health_interval_s": 2, **gateway}
    sections: list[tuple[str, dict[str, Any]]] = [
        ("gateway", gw), ("mqtt", {"tls": False, "keepalive_s": 5, **mqtt}),
        ("store", store or {}), ("leds", {"backend": "null", **(leds or {})}),
    ]
    lines: list[str] = []
    for name, table in sections:
        lines.append(f"[{name}]")
        lines += [f"{k} = {toml(v)}" for k, v in table.items()]
        lines.append("")
    for t in terminals:
        lines.append("[[terminals]]")
        lines += [f"{k} = {toml(v)}" for k, v in t.items()]
        lines.append("")
    path.write_text("\n".join(lines))
    return path


class GatewayProcess:
    """``gatewayctl run`` in a child process, with its output in ``log_path``."""

    def __init__(self, config: Path, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.log_path = log_path
        self.env = {**os.environ, "NO_COLOR": "1", **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> GatewayProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "--config", str(self.config), "run"],
            stdout=log, stderr=subprocess.STDOUT, env=self.env,
        )
        log.close()
        return self

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.running():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(10)


def write_punch_file(path: Path, n: int, *, start: int = 0, extra: dict[int, dict[str, Any]]
                     | None = None) -> list[str]:
    """Append ``n`` punch lines (a terminal's log); return their event ids."""
    ids = []
    with path.open("a") as fh:
        for i in range(start, start + n):
            item: dict[str, Any] = {"event_id": f"ev-{i:06d}", "user_id": str(1000 + i % 97),
                                    "time": f"2026-11-23T08:{(i // 60) % 60:02d}:{i % 60:02d}",
                                    "state": i % 2, "verify": 1}
            item.update((extra or {}).get(i, {}))
            fh.write(json.dumps(item) + "\n")
            ids.append(item["event_id"])
    return ids


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def recv_for(sock: socket.socket, seconds: float) -> list[str]:
    """Every datagram that arrives on ``sock`` within ``seconds`` (sd_notify tests)."""
    out: list[str] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sock.settimeout(max(0.01, end - time.monotonic()))
        try:
            out.append(sock.recv(4096).decode())
        except TimeoutError:
            break
    return out


class FakeClock:
    """A ``Clock`` standing still at 2026-11-23 01:00 UTC; tests move ``t`` by hand."""

    def __init__(self) -> None:
        self.t = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.t

    def monotonic(self) -> float:
        return self.t.timestamp()
