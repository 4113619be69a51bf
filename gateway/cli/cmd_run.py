"""``gatewayctl run``: the daemon (what systemd starts)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "run",
        help="run the gateway daemon (systemd starts this)",
        description="Run the gateway daemon in the foreground until SIGTERM.",
    )
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from gateway.appliance import daemon, logs
    from gateway.cli.common import load_config

    logs.setup(args.log_level)
    cfg = load_config(args)
    return daemon.run(cfg)
