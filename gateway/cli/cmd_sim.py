"""``gatewayctl sim zk|serial|adms``: run a terminal simulator (demo, tests, a bench check)."""

from __future__ import annotations

import argparse
import importlib
from typing import Any

SIMULATORS = {
    "zk": ("drivers.zk_terminal.sim", "a ZKTeco-protocol terminal on TCP/UDP"),
    "serial": ("drivers.serial_reader.sim", "a serial card reader on a pty or TCP port"),
    "adms": ("drivers.adms.sim", "a push (ADMS iclock) terminal posting to the gateway"),
}


def register(sub: Any) -> None:
    p = sub.add_parser(
        "sim",
        help="run a terminal simulator",
        description="Run a terminal simulator. Everything after the simulator "
        "name goes to it: gatewayctl sim zk --help",
    )
    p.add_argument("kind", choices=sorted(SIMULATORS))
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=_sim)


def _sim(args: argparse.Namespace) -> int:
    module = importlib.import_module(SIMULATORS[args.kind][0])
    return int(module.main(list(args.args)))
