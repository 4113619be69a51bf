"""``gatewayctl punch add`` (a technician's manual punch, 补卡) and ``punch audit``."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from gateway.cli import local
from gateway.cli.output import emit_json, json_flag, table


def register(sub: Any) -> None:
    p = sub.add_parser(
        "punch",
        help="enter a manual punch; list the audit log",
        description="Manual punches for when a terminal failed to record one.",
    )
    ps = p.add_subparsers(dest="punch_command", metavar="ACTION", required=True)
    a = ps.add_parser(
        "add",
        help="enter a punch by hand (audited, source=manual)",
        description="Enter a punch that a terminal failed to record. It is published like "
        "any other punch with source=manual, verify=manual, who entered it ($SUDO_USER or "
        "$USER, plus the SSH client address) and why; the audit log keeps it for good. "
        "Through the daemon when it runs, else straight into the store (published at the "
        "next start). An identical manual punch (terminal, user, time, state) entered before "
        "is refused (exit 1). It says 'published' only once the broker acknowledged it.",
        epilog="Example: gatewayctl punch add --terminal lobby --user 1001 "
        "--time 2026-11-23T08:59 --state check_in --reason 'fingerprint not read, "
        "confirmed by supervisor Li'",
    )
    a.add_argument("--terminal", required=True, help="terminal name from the config")
    a.add_argument("--user", required=True, help="the employee's user id on the terminal")
    a.add_argument(
        "--time",
        required=True,
        help="when, e.g. 2026-11-23T08:59 (gateway "
        "timezone unless an offset is given; a date alone is refused); not in the future, "
        "at most 60 days ago",
    )
    a.add_argument(
        "--state",
        required=True,
        help="check_in, check_out, break_out, break_in, overtime_in, overtime_out",
    )
    a.add_argument("--reason", required=True, help="why it is entered by hand")
    json_flag(a)
    a.set_defaults(func=_add)
    au = ps.add_parser(
        "audit",
        help="list manual punches (kept for good)",
        description="The audit log of manual punches, newest first. It is never pruned.",
    )
    au.add_argument("--limit", type=int, default=50, metavar="N")
    json_flag(au)
    au.set_defaults(func=_audit)


def _add(args: argparse.Namespace) -> int:
    from gateway.ops import control_client as control
    from gateway.ops.manual import who_am_i

    s = local.settings(args)
    fields = {
        "terminal": args.terminal,
        "user_id": args.user,
        "time": args.time,
        "state": args.state,
        "reason": args.reason,
        "entered_by": who_am_i(),
    }
    try:
        result = control.call(s.socket, {"cmd": "punch", "punch": fields}, 30.0)
    except control.RequestError as err:
        local.fail(args, str(err), 2 if err.kind == "bad_request" else 1)
    except control.DaemonUnreachable:
        result = _add_offline(args, s, fields)
    published = False
    if result["via"] == "daemon" and result.get("broker_connected"):
        published = _acked(s, int(result["seq"]), CONFIRM_S)
    if getattr(args, "json", False):
        emit_json({**result, "published": published, "entered_by": fields["entered_by"]})
        return 0
    if result["via"] != "daemon":
        when = "daemon stopped: stored, published at its next start"
    elif published:
        when = "published: the broker acknowledged it"
    elif not result.get("broker_connected"):
        # Issue 12: never "published now" while the broker is down.
        when = (
            f"queued, NOT published yet: the broker link is down ({result.get('broker_detail')});"
            " it goes out when the link returns"
        )
    else:
        when = "queued: not acknowledged by the broker yet (`gatewayctl queue` shows the backlog)"
    print(f"manual punch {result['event_id']} recorded ({when}); entered by {fields['entered_by']}")
    return 0


CONFIRM_S = 5.0  # how long `punch add` waits for the broker's PUBACK before saying "queued"


def _acked(s: local.Settings, seq: int, timeout: float) -> bool:
    """True once the row is marked delivered (the broker's PUBACK), within ``timeout``."""
    import time

    deadline = time.monotonic() + timeout
    try:
        with local.open_store(s) as store:
            while True:
                rows = store.query("SELECT status FROM punches WHERE seq=?", (seq,))
                if rows and rows[0][0] == 1:
                    return True
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.1)
    except Exception:  # cannot read the store: say "queued", which is true
        return False


def _add_offline(
    args: argparse.Namespace, s: local.Settings, fields: dict[str, str]
) -> dict[str, Any]:
    """The daemon is stopped: validate, then write punch + audit straight into the store."""
    import sqlite3

    from gateway.errors import StoreError
    from gateway.ops.manual import ManualPunchError, make_manual_punch
    from gateway.store.db import DuplicatePunch, Store

    try:
        punch = make_manual_punch(
            fields,
            terminals=[str(t.get("name")) for t in s.terminals],
            zone=ZoneInfo(s.timezone),
            now=datetime.now(UTC),
        )
    except ManualPunchError as err:
        local.fail(args, str(err), 2)
    if not s.db_path.exists():
        local.fail(
            args,
            f"no punch store at {s.db_path} and the daemon is stopped: start the daemon "
            "(sudo systemctl start attendance-gateway), then enter the punch again",
            1,
        )
    try:
        with Store(s.db_path) as store:
            seq = store.add_manual(punch)
    except DuplicatePunch as err:
        local.fail(args, str(err), 1)
    except (StoreError, sqlite3.Error, OSError) as err:
        # Issue 12: a technician in group attgw may read the store but not write it.
        reason = str(err).removeprefix(f"cannot open store {s.db_path}: ")
        local.fail(
            args,
            f"cannot write the punch store {s.db_path} ({reason}) while the daemon is stopped: "
            "start the daemon (sudo systemctl start attendance-gateway) and enter the punch "
            "again, or run this command with sudo",
            1,
        )
    return {"event_id": punch.event_id, "seq": seq, "added": 1, "via": "database"}


def _audit(args: argparse.Namespace) -> int:
    s = local.settings(args)
    try:
        store = local.open_store(s)
    except local.StoreUnavailable as err:
        local.fail(args, str(err), 1)
    cols = [
        "entered_at",
        "terminal",
        "user_id",
        "punch_time",
        "state",
        "entered_by",
        "reason",
        "event_id",
    ]
    with store:
        rows = store.query(
            f"SELECT {', '.join(cols)} FROM manual_audit "  # nosec B608 # noqa: S608 - fixed names
            "ORDER BY id DESC LIMIT ?",
            (max(1, args.limit),),
        )
    if getattr(args, "json", False):
        emit_json([dict(zip(cols, r, strict=True)) for r in rows])
    else:
        print(table([c.upper() for c in cols], rows) if rows else "no manual punches")
    return 0
