"""What ``gatewayctl`` knows without the daemon, cheaply: the config's few keys the read-only
commands need, the stored state (a read-only store), and the Pi's own sensors.

Why not ``gateway.config.load``: it imports every configured driver to validate its options
(pyzk, pyserial, structlog), which costs ~0.5 s on a Pi 3 before ``status`` prints anything.
The read-only commands only need names and paths, so they read the TOML directly;
``config check`` and ``doctor`` do the full validation.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

from gateway.appliance import sysinfo
from gateway.config import config_path
from gateway.config import defaults as d
from gateway.errors import StoreError
from gateway.store.db import Store, iso_utc

NOT_RUNNING = "daemon not running — showing the stored state"
START_HINT = "start it with: sudo systemctl start attendance-gateway"


@dataclass(frozen=True)
class Settings:
    path: Path
    gateway_id: str
    data_dir: Path
    timezone: str
    socket: Path
    time_sync: str
    min_free_disk_mb: int
    backup_keep: int
    mqtt: dict[str, Any]
    terminals: list[dict[str, Any]] = field(default_factory=list)

    @property
    def db_path(self) -> Path:
        return self.data_dir / d.DB_NAME

    def terminal(self, name: str) -> dict[str, Any] | None:
        return next((t for t in self.terminals if t.get("name") == name), None)


def settings(args: argparse.Namespace) -> Settings:
    """Read the config's paths and names; exit 2 with the reason if it cannot be read."""
    p = config_path(getattr(args, "config", None))
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
        gw, store = data.get("gateway", {}), data.get("store", {})
        terminals = [t for t in data.get("terminals", []) if isinstance(t, dict)]
        return Settings(
            path=p,
            gateway_id=str(gw["id"]),
            data_dir=Path(gw.get("data_dir", d.DATA_DIR)),
            timezone=str(gw.get("timezone", "UTC")),
            socket=Path(gw.get("control_socket", d.CONTROL_SOCKET)),
            time_sync=str(gw.get("time_sync", d.TIME_SYNC)),
            min_free_disk_mb=int(store.get("min_free_disk_mb", d.MIN_FREE_DISK_MB)),
            backup_keep=int(store.get("backup_keep", d.BACKUP_KEEP)),
            mqtt=dict(data.get("mqtt", {})),
            terminals=terminals,
        )
    except (
        OSError,
        UnicodeDecodeError,
        tomllib.TOMLDecodeError,
        KeyError,
        TypeError,
        ValueError,
        AttributeError,
    ) as err:
        what = f"missing key {err}" if isinstance(err, KeyError) else str(err)
        fail(args, f"{p}: cannot read the config: {what} (run `gatewayctl config check`)")


def fail(
    args: argparse.Namespace, message: str, code: int = 2, hint: str | None = None
) -> NoReturn:
    """Print an error (JSON with --json) and exit with ``code``."""
    if getattr(args, "json", False):
        print(json.dumps({"ok": False, "error": message, "hint": hint}))
    else:
        print(f"gatewayctl: {message}", file=sys.stderr)
        if hint:
            print(f"  {hint}", file=sys.stderr)
    raise SystemExit(code)


class StoreUnavailable(Exception):
    """The database cannot be read; the message says why and what to do."""


def open_store(s: Settings) -> Store:
    """The store, read-only (WAL lets us read while the daemon writes)."""
    if not s.db_path.exists():
        raise StoreUnavailable(f"no database at {s.db_path} (the daemon has never run here?)")
    try:
        store = Store(s.db_path, readonly=True)
        store.figures()  # fail here, with the reason, rather than in the middle of a table
    except (sqlite3.Error, StoreError) as err:  # permissions, corruption, not a gateway db
        hint = (
            " (run with sudo or as a member of group attgw)"
            if "unable to open" in str(err) or "readonly" in str(err)
            else ""
        )
        raise StoreUnavailable(f"cannot read {s.db_path}: {err}{hint}") from err
    return store


def store_extras(store: Store, now: datetime | None = None) -> dict[str, Any]:
    """Rates over the last 5 minutes and, per terminal, the newest stored punch.

    Issue 13: no scan of the store. The received rate bisects ``seq``, the delivered rate
    walks the delivered_at index over the last 5 minutes only; the per-terminal figures come
    from ``terminal_stats`` (kept with the rows) and one row by its ``seq``. An older schema
    falls back to the scans.
    """
    now = now or datetime.now(UTC)
    since = iso_utc(now - timedelta(minutes=5))
    received = received_since(store, since)
    (delivered,) = store.query(
        "SELECT count(*) FROM punches WHERE status=1 AND delivered_at >= ?", (since,)
    )[0]
    try:
        stats = store.query(
            "SELECT s.terminal, s.last_received_at, p.record, s.stored FROM terminal_stats s"
            " LEFT JOIN punches p ON p.seq = s.last_seq"
        )
    except sqlite3.Error:  # schema v2 (the daemon has not upgraded the file yet)
        stats = [
            (t, r, rec, n)
            for t, _seq, r, rec, n in store.query(
                "SELECT terminal, max(seq), received_at, record, count(*) FROM punches"
                " GROUP BY terminal"
            )
        ]
    last: dict[str, Any] = {}
    for terminal, received_at, rec, total in stats:
        punch = json.loads(rec) if rec else {}  # None: its newest row was pruned already
        last[terminal] = {
            "last_received_at": received_at,
            "last_punch_time": punch.get("time"),
            "last_user": punch.get("user_id"),
            "stored": total,
        }
    return {
        "rate_per_min": {"received": round(received / 5, 1), "delivered": round(delivered / 5, 1)},
        "terminals": last,
    }


def received_since(store: Store, since: str) -> int:
    """How many seqs were given out since ``since`` (ISO UTC): a bisection over ``seq``
    (O(log² n), no index on received_at: it cost 10 % of ingest). ``received_at`` grows with
    ``seq``; a clock stepped back only skews this rate, never a stored punch."""
    # Two statements: SQLite's min/max shortcut (one b-tree edge) only applies to a lone
    # min() or max(); together they scan the table (66 ms at 1M rows).
    ((first,),) = store.query("SELECT min(seq) FROM punches")
    ((last,),) = store.query("SELECT max(seq) FROM punches")
    if first is None or last is None:
        return 0
    lo, hi = int(first), int(last) + 1  # the first seq received at or after `since`
    while lo < hi:
        mid = (lo + hi) // 2
        row = store.query(
            "SELECT seq, received_at FROM punches WHERE seq >= ? ORDER BY seq LIMIT 1", (mid,)
        )
        if not row or row[0][1] >= since:
            hi = mid
        else:
            lo = int(row[0][0]) + 1
    return max(0, int(last) - lo + 1)


def disk_free_mb(path: Path) -> int | None:
    free = sysinfo.disk_free_bytes(path if path.exists() else path.parent)
    return None if free is None else free // 2**20


def offline_snapshot(s: Settings) -> dict[str, Any]:
    """A status snapshot shaped like the daemon's, from the stored state alone."""
    now = datetime.now(UTC)
    faults: list[dict[str, Any]] = []
    queue: dict[str, Any]
    extras: dict[str, Any] = {"rate_per_min": None, "terminals": {}}
    try:
        store = open_store(s)
    except Exception as err:
        queue = {"error": str(err)}
        if s.db_path.exists():
            faults.append({"code": 4, "text": f"store unreadable: {err}"})
    else:
        with store:
            queue = store.figures()
            extras = store_extras(store, now)
        if queue.get("dead_lettered"):
            faults.append(
                {
                    "code": 6,
                    "text": f"{queue['dead_lettered']} punch(es) refused "
                    "by the broker (dead letters)",
                }
            )
    free = disk_free_mb(s.data_dir)
    if free is not None and free < s.min_free_disk_mb:
        faults.append({"code": 3, "text": f"disk low: {free} MB free (< {s.min_free_disk_mb} MB)"})
    synced = sysinfo.make_time_sync(s.time_sync).synced()
    if synced is False:
        faults.append({"code": 5, "text": "the Pi's clock is not NTP-synchronised"})
    terminals = {
        str(t.get("name")): {
            "driver": t.get("driver"),
            "state": "stopped",
            "detail": "daemon not running",
            **extras["terminals"].get(str(t.get("name")), {}),
        }
        for t in s.terminals
    }
    return {
        "daemon": {"running": False, "note": NOT_RUNNING},
        "gateway": s.gateway_id,
        "at": iso_utc(now),
        "broker": {
            "connected": False,
            "detail": "daemon not running",
            "host": s.mqtt.get("host"),
            "port": s.mqtt.get("port"),
        },
        "queue": {**queue, "rate_per_min": extras["rate_per_min"]},
        "terminals": terminals,
        "disk": {"free_mb": free, "min_free_mb": s.min_free_disk_mb},
        "cpu_temp_c": sysinfo.cpu_temperature_c(),
        "clock_synced": synced,
        "faults": sorted(faults, key=lambda f: int(f["code"])),
    }


def describe_faults(faults: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add the LED table's meaning and fix (imported only when there is a fault to show)."""
    if not faults or all("meaning" in f for f in faults):
        return faults
    from gateway.appliance.leds import FAULT_CODES

    out = []
    for f in faults:
        fc = FAULT_CODES.get(int(f["code"]))
        out.append({**f, "meaning": fc.meaning if fc else None, "fix": fc.fix if fc else None})
    return out


def daemon_call(
    args: argparse.Namespace, s: Settings, request: dict[str, Any], timeout: float = 30.0
) -> Any:
    """A request that needs the daemon: exit 3 with a hint when it is not running, exit 1
    with the daemon's reason when it refuses."""
    from gateway.ops import control_client as control

    try:
        return control.call(s.socket, request, timeout)
    except control.DaemonUnreachable as err:
        fail(args, f"the daemon is not running ({err})", 3, START_HINT)
    except control.RequestError as err:
        fail(args, str(err), 2 if err.kind in ("bad_request", "not_found") else 1)
