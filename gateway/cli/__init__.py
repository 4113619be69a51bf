"""``gatewayctl``: the daemon (``run``) and the technician's toolkit, one console script.

Each command lives in its own module under ``gateway.cli`` with a ``register(subparsers)``
function; heavy imports happen inside the handlers, so ``gatewayctl status`` starts fast.

Exit codes (PRODUCT.md §6): 0 healthy, 1 degraded or warnings, 2 usage or config error,
3 daemon unreachable where it is needed.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from gateway import __version__

EXIT_OK, EXIT_DEGRADED, EXIT_USAGE, EXIT_NO_DAEMON = 0, 1, 2, 3

#: Command modules, in the order ``--help`` lists them.
COMMAND_MODULES: list[str] = [
    "gateway.cli.cmd_run",
    "gateway.cli.cmd_config",
    "gateway.cli.cmd_sim",
    "gateway.cli.cmd_demo",
    "gateway.cli.cmd_status",
    "gateway.cli.cmd_doctor",
    "gateway.cli.cmd_terminals",
    "gateway.cli.cmd_queue",
    "gateway.cli.cmd_punch",
    "gateway.cli.cmd_led",
    "gateway.cli.cmd_backup",
    "gateway.cli.cmd_storage",
    "gateway.cli.cmd_bundle",
    "gateway.cli.cmd_remote",
    "gateway.cli.cmd_completion",
]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gatewayctl",
        description="Attendance gateway: carries every punch from the time clocks to the "
        "cloud. Run the daemon, or look at and fix a running one.",
        epilog="Exit status: 0 healthy, 1 degraded/warnings, 2 usage or config error, "
        "3 daemon unreachable. Config: --config, else $GATEWAY_CONFIG, else "
        "/etc/attendance-gateway/config.toml.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--config", metavar="PATH", help="config file (default: see below)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    _options_anywhere(parser)
    return parser


def _options_anywhere(parser: argparse.ArgumentParser) -> None:
    """Accept the global options after the command too, on every (sub)command (issue 12).

    The shipped unit runs ``gatewayctl run --config ...``: argparse only knows an option on
    the parser that defines it, so each subparser gets a copy whose default is SUPPRESS
    (given after the command, it overrides the top-level value; absent, it leaves it alone).
    ``sim`` hands everything after the simulator's name to the simulator, by design.
    """
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for child in {id(p): p for p in action.choices.values()}.values():
            if "--config" not in child._option_string_actions:
                child.add_argument(
                    "--config", metavar="PATH", default=argparse.SUPPRESS, help="config file"
                )
            if "--json" not in child._option_string_actions:
                child.add_argument(
                    "--json",
                    action="store_true",
                    default=argparse.SUPPRESS,
                    help="machine-readable output",
                )
            _options_anywhere(child)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
