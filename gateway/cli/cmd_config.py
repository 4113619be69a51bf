"""``gatewayctl config check [PATH]``: validate a config without starting anything."""

from __future__ import annotations

import argparse
from typing import Any

from gateway.cli.common import emit_json, load_config


def register(sub: Any) -> None:
    p = sub.add_parser(
        "config",
        help="validate a config file",
        description="Validate a config without starting anything. Every "
        "problem is listed with its TOML path; exit 2 when there is one.",
    )
    csub = p.add_subparsers(dest="config_command", metavar="ACTION")
    c = csub.add_parser("check", help="validate a config file")
    c.add_argument("path", nargs="?", help="config file (default: --config / $GATEWAY_CONFIG)")
    c.set_defaults(func=_check)


def _check(args: argparse.Namespace) -> int:
    cfg = load_config(args, args.path)
    if args.json:
        emit_json(
            {
                "ok": True,
                "path": str(cfg.path),
                "gateway": cfg.gateway.id,
                "terminals": [{"name": t.name, "driver": t.driver} for t in cfg.terminals],
            }
        )
    else:
        print(
            f"{cfg.path}: OK — gateway {cfg.gateway.id}, {len(cfg.terminals)} terminal(s): "
            + ", ".join(f"{t.name} ({t.driver})" for t in cfg.terminals)
        )
    return 0
