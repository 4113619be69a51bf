"""``gatewayctl queue``: backlog figures, ``peek``, ``resend``, ``export``."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import datetime
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from gateway.cli import local, outfile
from gateway.cli.output import Progress, age, emit_json, json_flag, table
from gateway.store.db import Store, iso_utc

STATUS = {0: "pending", 1: "delivered", 2: "dead"}
CSV_FIELDS = [
    "seq",
    "event_id",
    "terminal",
    "terminal_sn",
    "driver",
    "user_id",
    "time",
    "state",
    "verify",
    "source",
    "entered_by",
    "reason",
    "received_at",
    "status",
    "delivered_at",
    "dead_reason",
]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "queue",
        help="backlog figures; peek, resend, export punches",
        description="Without an action: the backlog figures (pending, oldest, "
        "dead letters, today's counts). Works with the daemon stopped.",
    )
    json_flag(p)
    p.set_defaults(func=_figures)
    qs = p.add_subparsers(dest="queue_command", metavar="ACTION")
    peek = qs.add_parser(
        "peek",
        help="the oldest pending punches and the dead letters",
        description="Show the oldest pending punches and every dead letter "
        "with the broker's reason.",
    )
    peek.add_argument("--limit", type=int, default=10, metavar="N", help="rows (default 10)")
    json_flag(peek)
    peek.set_defaults(func=_peek)
    rs = qs.add_parser(
        "resend",
        help="mark delivered punches pending again",
        description="Mark punches received since T (already delivered) pending "
        "again, or with --dead the dead letters; they are published again. "
        "Through the daemon when it runs, else directly in the database. "
        "Consumers deduplicate by event_id.",
    )
    g = rs.add_mutually_exclusive_group(required=True)
    g.add_argument(
        "--since",
        metavar="T",
        help="ISO time, e.g. 2026-11-23T08:00 (gateway timezone when no offset)",
    )
    g.add_argument("--dead", action="store_true", help="re-send the dead letters instead")
    json_flag(rs)
    rs.set_defaults(func=_resend)
    ex = qs.add_parser(
        "export",
        help="export punches to CSV (for a manual import)",
        description="Export punches received since T as CSV, every status, "
        "oldest first. Works with the daemon running or stopped.",
    )
    ex.add_argument("--since", metavar="T", required=True, help="ISO time (received at)")
    ex.add_argument("--format", choices=("csv",), default="csv")
    ex.add_argument("--output", "-o", metavar="FILE", help="write here (default: stdout)")
    ex.set_defaults(func=_export)


def parse_since(args: argparse.Namespace, text: str, timezone: str) -> datetime:
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        local.fail(args, f"--since: not a date/time: {text!r} (e.g. 2026-11-23T08:00)", 2)
    return dt if dt.tzinfo else dt.replace(tzinfo=ZoneInfo(timezone))


def _store(args: argparse.Namespace, s: local.Settings) -> Store:
    try:
        return local.open_store(s)
    except local.StoreUnavailable as err:
        local.fail(args, str(err), 1)


def _figures(args: argparse.Namespace) -> int:
    s = local.settings(args)
    with _store(args, s) as store:
        fig = store.figures()
        fig["rate_per_min"] = local.store_extras(store)["rate_per_min"]
        by_terminal = store.query(
            "SELECT terminal, count(*) FROM punches WHERE status=0 "
            "GROUP BY terminal ORDER BY terminal"
        )
    fig["pending_by_terminal"] = dict(by_terminal)
    if getattr(args, "json", False):
        emit_json(fig)
    else:
        print(
            f"pending {fig['pending']} (oldest {age(fig['oldest_pending_age_s'])}), "
            f"dead letters {fig['dead_lettered']}, received today {fig['received_today']}, "
            f"delivered today {fig['delivered_today']}, last seq {fig['last_seq']}"
        )
        if by_terminal:
            print(table(["TERMINAL", "PENDING"], by_terminal))
    return 1 if fig["dead_lettered"] else 0


def _peek(args: argparse.Namespace) -> int:
    s = local.settings(args)
    limit = max(1, min(args.limit, 10000))
    with _store(args, s) as store:
        pending = store.query(
            "SELECT seq, record, received_at, attempts FROM punches "
            "WHERE status=0 ORDER BY seq LIMIT ?",
            (limit,),
        )
        dead = store.query(
            "SELECT seq, record, received_at, attempts, dead_reason FROM punches"
            " WHERE status=2 ORDER BY seq LIMIT ?",
            (limit,),
        )

    def row(r: tuple[Any, ...]) -> dict[str, Any]:
        rec = json.loads(r[1])
        out = {
            "seq": r[0],
            "event_id": rec.get("event_id"),
            "terminal": rec.get("terminal"),
            "user_id": rec.get("user_id"),
            "time": rec.get("time"),
            "state": rec.get("state"),
            "received_at": r[2],
            "attempts": r[3],
        }
        if len(r) > 4:
            out["dead_reason"] = r[4]
        return out

    result = {"pending": [row(r) for r in pending], "dead": [row(r) for r in dead]}
    if getattr(args, "json", False):
        emit_json(result)
        return 0
    cols = ["seq", "terminal", "user_id", "time", "state", "received_at", "attempts"]
    print(f"Oldest pending ({len(result['pending'])} shown)")
    print(
        table([c.upper() for c in cols], [[p[c] for c in cols] for p in result["pending"]])
        if result["pending"]
        else "  none"
    )
    print(f"\nDead letters ({len(result['dead'])} shown)")
    print(
        table(
            [c.upper() for c in [*cols, "dead_reason"]],
            [[p[c] for c in [*cols, "dead_reason"]] for p in result["dead"]],
        )
        if result["dead"]
        else "  none"
    )
    return 0


def _resend(args: argparse.Namespace) -> int:
    from gateway.ops import control_client as control

    s = local.settings(args)
    since = None if args.dead else parse_since(args, args.since, s.timezone)
    req = {"cmd": "resend", "dead": bool(args.dead), "since": since.isoformat() if since else None}
    try:
        n = control.call(s.socket, req, 30.0)["requeued"]
        via = "daemon"
    except control.DaemonUnreachable:
        import sqlite3

        from gateway.errors import StoreError

        if not s.db_path.exists():
            local.fail(args, f"no database at {s.db_path}", 1)
        try:
            with Store(s.db_path) as store:
                n = store.requeue(since=since, dead=bool(args.dead))
        except (StoreError, sqlite3.Error, OSError) as err:
            local.fail(
                args,
                f"cannot write the punch store {s.db_path} ({err}) while the daemon is "
                "stopped: start the daemon and run resend again, or use sudo",
                1,
            )
        via = "database (daemon stopped: published at its next start)"
    except control.RequestError as err:
        local.fail(args, str(err), 1)
    if getattr(args, "json", False):
        emit_json({"requeued": n, "via": via.split(" ")[0]})
    else:
        what = "dead letter(s)" if args.dead else f"punch(es) received since {since}"
        print(f"{n} {what} marked pending again via the {via}")
    return 0


def _export(args: argparse.Namespace) -> int:
    s = local.settings(args)
    since = parse_since(args, args.since, s.timezone)
    path = outfile.check(args, args.output) if args.output else None  # before any work
    with _store(args, s) as store:
        cutoff = iso_utc(since)
        ((total,),) = store.query("SELECT count(*) FROM punches WHERE received_at >= ?", (cutoff,))
        progress = Progress("exporting", total) if path else Progress("", force=False)
        progress.enabled = progress.enabled and path is not None and total > 1000
        if path is None:
            done = _write_csv(store, sys.stdout, cutoff, progress)
        else:
            try:  # employee data: a private file, whole or not at all (issue 12)
                with outfile.private_text(path) as out:
                    done = _write_csv(store, out, cutoff, progress)
            except OSError as err:
                outfile.failed(args, path, err)
        progress.finish()
    if path is not None:
        print(f"{done} punch(es) written to {path}", file=sys.stderr)
    return 0


def _write_csv(store: Store, out: TextIO, cutoff: str, progress: Progress) -> int:
    writer = csv.DictWriter(out, CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    done, last = 0, 0
    while True:
        rows = store.query(
            "SELECT seq, record, received_at, status, delivered_at, dead_reason FROM "
            "punches WHERE received_at >= ? AND seq > ? ORDER BY seq LIMIT 2000",
            (cutoff, last),
        )
        if not rows:
            break
        for seq, rec, received_at, status, delivered_at, dead_reason in rows:
            writer.writerow(
                {
                    **json.loads(rec),
                    "seq": seq,
                    "received_at": received_at,
                    "status": STATUS.get(status, status),
                    "delivered_at": delivered_at,
                    "dead_reason": dead_reason,
                }
            )
        done += len(rows)
        last = rows[-1][0]
        progress.update(done)
    return done
