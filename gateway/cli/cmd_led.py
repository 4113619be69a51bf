"""``gatewayctl led test``: cycle every LED pattern (through the daemon, which owns the pins)."""

from __future__ import annotations

import argparse
from typing import Any

from gateway.cli import local
from gateway.cli.output import emit_json, json_flag


def register(sub: Any) -> None:
    p = sub.add_parser(
        "led", help="test the status LEDs", description="The status LEDs (PRODUCT.md §5)."
    )
    ls = p.add_subparsers(dest="led_command", metavar="ACTION", required=True)
    t = ls.add_parser(
        "test",
        help="cycle every LED pattern once (needs the daemon)",
        description="Show every pattern once: self-test, heartbeat, each "
        "network mode, each fault code. The daemon owns the GPIO pins, so it "
        "must be running; the live state resumes afterwards.",
    )
    json_flag(t)
    t.set_defaults(func=_test)


def _test(args: argparse.Namespace) -> int:
    s = local.settings(args)
    result = local.daemon_call(args, s, {"cmd": "led_test"}, 10.0)
    if getattr(args, "json", False):
        emit_json(result)
        return 0
    print(
        f"LED test running for {result['total_s']:g} s (backend {result['backend']}); "
        "watch the LEDs:"
    )
    t = 0.0
    for step in result["steps"]:
        print(f"  {t:5.1f} s  {step['label']}")
        t += step["duration_s"]
    return 0
