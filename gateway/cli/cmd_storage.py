"""``gatewayctl storage show|ack``: the corrupt-database note behind fault 4.

When the daemon finds its database corrupt it moves the file aside (never deletes it),
starts a fresh store and raises fault 4 until a technician has seen it. ``show`` prints the
note (where the old file is, what was salvaged); ``ack`` clears the fault. Works with the
daemon running or stopped.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from gateway.cli import local
from gateway.cli.output import emit_json, json_flag


def register(sub: Any) -> None:
    p = sub.add_parser(
        "storage",
        help="the corrupt-database note (fault 4): show, acknowledge",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    ssub = p.add_subparsers(dest="storage_command", metavar="ACTION", required=True)
    for name, text in (
        ("show", "print the note: the quarantined file and what was salvaged"),
        ("ack", "acknowledge it: clears fault 4 (the moved-aside file stays)"),
    ):
        a = ssub.add_parser(name, help=text)
        json_flag(a)
        a.set_defaults(func=_run, action=name)


def _run(args: argparse.Namespace) -> int:
    from gateway.store.db import Store
    from gateway.store.guard import StorageGuard, acknowledge

    s = local.settings(args)
    if not s.db_path.exists():
        local.fail(args, f"no database at {s.db_path}", code=1)
    with Store(s.db_path, readonly=args.action == "show") as store:
        note = StorageGuard(store).quarantine()
        done = acknowledge(store) if args.action == "ack" else False
    info = None if note is None else json.loads(note.as_meta())
    if args.json:
        emit_json({"quarantine": info, "acknowledged": done})
    elif info is None:
        print("no corrupt-database note: fault 4 is not raised by the store")
    else:
        print("The database was found corrupt and moved aside:")
        for k, v in info.items():
            print(f"  {k:<14} {v}")
        print(
            "acknowledged: fault 4 cleared"
            if done
            else "Acknowledge with: gatewayctl storage ack (keep the moved-aside file for support)"
        )
    return 1 if info is not None and not done else 0
