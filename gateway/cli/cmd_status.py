"""``gatewayctl status [--watch]``: the whole gateway on one screen.

From the running daemon (its health snapshot over the control socket) plus the read-only
store (rates, newest punch per terminal); with the daemon stopped, from the stored state
alone, saying so. Exit 0 when healthy, 1 when anything is degraded (a fault, the broker
down, a terminal not online, or the daemon not running). Imports stay light (no paho, pyzk,
pyserial, structlog): this is the first thing a technician types.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from typing import Any

from gateway import __version__
from gateway.cli import local
from gateway.cli.output import age, emit_json, json_flag, paint, table, tone, use_colour


def register(sub: Any) -> None:
    p = sub.add_parser(
        "status",
        help="one screen: broker link, queue, terminals, disk, faults",
        description="Show the gateway's state: broker link, queue (pending, oldest, rate), "
        "each terminal (state, last punch, clock skew, log usage), disk, CPU temperature, "
        "clock sync and active faults with their LED code. Works with the daemon stopped "
        "(shows the stored state). Exit 0 healthy, 1 degraded.",
    )
    p.add_argument("--watch", action="store_true", help="refresh every --interval seconds")
    p.add_argument(
        "--interval",
        type=float,
        default=2.0,
        metavar="S",
        help="refresh period for --watch (default 2)",
    )
    json_flag(p)
    p.set_defaults(func=_status)


def gather(s: local.Settings) -> dict[str, Any]:
    """The status snapshot: live from the daemon when it answers, else the stored state."""
    return _with_package(_gather(s), s)


def _with_package(snap: dict[str, Any], s: local.Settings) -> dict[str, Any]:
    """Versions, and an upgrade that failed to start (issue 17).

    The package's postinst leaves ``<data_dir>/upgrade-failed`` (``from=``/``to=``/``at=``
    lines) when the new version did not come up; it is stale once the daemon runs ``to``.
    """
    running = snap.get("version") if snap.get("daemon", {}).get("running") else None
    snap["package"] = {"installed": __version__, "running": running}
    try:
        text = (s.data_dir / "upgrade-failed").read_text()
    except OSError:
        return snap
    mark = dict(ln.split("=", 1) for ln in text.splitlines() if "=" in ln)
    if running != mark.get("to"):
        snap["package"]["upgrade_failed"] = mark
    return snap


def _gather(s: local.Settings) -> dict[str, Any]:
    from gateway.ops import control_client as control

    try:
        snap = dict(control.call(s.socket, {"cmd": "status"}, timeout=5.0))
    except control.DaemonUnreachable as err:
        snap = local.offline_snapshot(s)
        snap["daemon"]["why"] = str(err)
        snap["faults"] = local.describe_faults(snap["faults"])
        return snap
    except control.RequestError as err:  # it is there but does not answer: hung
        snap = local.offline_snapshot(s)
        snap["daemon"] = {
            "running": True,
            "answering": False,
            "note": f"daemon not answering ({err}) — showing the stored state",
        }
        snap["faults"] = local.describe_faults(snap["faults"])
        return snap
    snap["daemon"] = {
        "running": True,
        "pid": snap.pop("pid", None),
        "uptime_s": snap.pop("uptime_s", None),
    }
    snap["broker"] = {
        **snap.get("broker", {}),
        "host": s.mqtt.get("host"),
        "port": s.mqtt.get("port"),
    }
    try:
        with local.open_store(s) as store:
            extras = local.store_extras(store)
    except Exception as err:  # the daemon's snapshot already carries the store fault
        extras = {"rate_per_min": None, "terminals": {}, "error": str(err)}
    snap.setdefault("queue", {})["rate_per_min"] = extras["rate_per_min"]
    for name, t in snap.get("terminals", {}).items():
        t.update(extras["terminals"].get(name, {}))
    return snap


def healthy(snap: dict[str, Any]) -> bool:
    return (
        bool(snap.get("daemon", {}).get("running"))
        and not snap.get("package", {}).get("upgrade_failed")
        and snap.get("daemon", {}).get("answering", True)
        and not snap.get("faults")
        and bool(snap.get("broker", {}).get("connected"))
        and all(t.get("state") == "online" for t in snap.get("terminals", {}).values())
    )


def render(snap: dict[str, Any]) -> str:
    now = datetime.now(UTC)
    d, b, q = snap.get("daemon", {}), snap.get("broker", {}), snap.get("queue", {})
    lines: list[str] = []
    if d.get("running") and d.get("answering", True):
        run = f"daemon running (pid {d.get('pid')}, up {age(d.get('uptime_s'))})"
    else:
        run = paint(d.get("note", local.NOT_RUNNING), "yellow")
    pkg = snap.get("package", {})
    ver = str(pkg.get("running") or pkg.get("installed"))
    if pkg.get("running") and pkg["running"] != pkg.get("installed"):
        ver += paint(f" (installed {pkg.get('installed')}: restart pending)", "yellow")
    lines.append(f"Gateway   {paint(str(snap.get('gateway')), 'bold')}   {ver}   {run}")
    if failed := pkg.get("upgrade_failed"):
        lines.append(
            f"Upgrade   {paint('FAILED', 'red')}: {failed.get('from')} -> {failed.get('to')} "
            f"did not start ({failed.get('at')}); journalctl -u attendance-gateway; "
            "roll back: docs/install.md, Upgrades and rollback"
        )
    where = f"{b.get('host')}:{b.get('port')}" if b.get("host") else "-"
    if b.get("connected"):
        link = tone("connected") + f" (for {age(b.get('for_s'))}, {b.get('inflight', 0)} in flight)"
    else:
        link = tone("down") + f": {b.get('detail')}"
    lines.append(f"Broker    {where}   {link}")
    if "error" in q:
        lines.append(f"Queue     {paint('unreadable', 'red')}: {q['error']}")
    else:
        rate = q.get("rate_per_min") or {}
        lines.append(
            f"Queue     pending {q.get('pending')}, oldest {age(q.get('oldest_pending_age_s'))}, "
            f"dead letters {q.get('dead_lettered')}; today received {q.get('received_today')}, "
            f"delivered {q.get('delivered_today')}{_resent(q)}; "
            f"rate in {rate.get('received', '-')}/min, "
            f"out {rate.get('delivered', '-')}/min"
        )
    disk = snap.get("disk", {})
    temp = snap.get("cpu_temp_c")
    synced = snap.get("clock_synced")
    clock = {
        True: "synchronised",
        False: paint("NOT synchronised", "red"),
        None: "unknown (run doctor)",
    }[synced]
    power = ""
    thr = snap.get("throttled")
    if isinstance(thr, dict):
        power = "   power " + (paint("UNDER-VOLTAGE", "red") if thr.get("now") else "ok")
    lines.append(
        f"System    disk {disk.get('free_mb', '-')} MB free (min {disk.get('min_free_mb')} MB)"
        f"   CPU {'-' if temp is None else f'{temp:.1f} °C'}   clock {clock}{power}"
    )
    rows = []
    for name, t in snap.get("terminals", {}).items():
        last = t.get("last_punch_at") or t.get("last_received_at")
        skew = t.get("clock_skew_s")
        usage = t.get("log_usage")
        rows.append(
            [
                name,
                t.get("driver"),
                tone(str(t.get("state"))),
                _ago(last, now),
                t.get("last_punch_time") or "-",
                "-" if skew is None else f"{skew:+.0f} s",
                "-" if usage is None else f"{usage:.0%}",
                t.get("detail") or "",
            ]
        )
    lines += ["", "Terminals"]
    lines.append(
        table(
            ["NAME", "DRIVER", "STATE", "LAST PUNCH", "PUNCH TIME", "SKEW", "LOG", "DETAIL"], rows
        )
        if rows
        else "  (none configured)"
    )
    faults = snap.get("faults", [])
    lines += ["", "Faults" if faults else "Faults    none"]
    for f in faults:
        lines.append(f"  {paint('LED ' + str(f['code']), 'red')}  {f['text']}")
        if f.get("meaning"):
            lines.append(f"         {f['meaning']}; fix: {f.get('fix')}")
    return "\n".join(lines)


def _resent(q: dict[str, Any]) -> str:
    """Re-sent punches are counted apart, so delivered never exceeds received (issue 13)."""
    n = q.get("resent_today")
    return f" (+{n} re-sent)" if n else ""


def _ago(iso: str | None, now: datetime) -> str:
    if not iso:
        return "never"
    try:
        then = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    return age(max(0.0, (now - then).total_seconds())) + " ago"


def _status(args: argparse.Namespace) -> int:
    s = local.settings(args)
    json_out = getattr(args, "json", False)
    if not args.watch:
        snap = gather(s)
        if json_out:
            emit_json(snap)
        else:
            print(render(snap))
        return 0 if healthy(snap) else 1
    tty = use_colour() or sys.stdout.isatty()
    try:
        while True:
            snap = gather(s)
            if json_out:
                emit_json(snap)
            else:
                head = "\033[H\033[2J" if tty else "\n"
                sys.stdout.write(
                    head + f"gatewayctl status --watch  (every {args.interval:g} s,"
                    " Ctrl-C to stop)\n\n" + render(snap) + "\n"
                )
            sys.stdout.flush()
            time.sleep(max(0.2, args.interval))
    except KeyboardInterrupt:
        return 0
