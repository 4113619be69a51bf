"""``gatewayctl doctor``: the health-check report, PASS/WARN/FAIL with a fix for each."""

from __future__ import annotations

import argparse
from typing import Any

from gateway.cli.output import emit_json, json_flag, paint, table, tone


def register(sub: Any) -> None:
    p = sub.add_parser(
        "doctor",
        help="check everything and say how to fix what is wrong",
        description="Check the config, the database, disk space, the broker (DNS, TCP, TLS "
        "handshake, MQTT login), each terminal, NTP sync, GPIO and power. Each check is "
        "PASS, WARN, FAIL or SKIP, with the LED fault code where one applies and a one-line "
        "fix. Exit 0 all pass, 1 any WARN or FAIL, 2 the config is invalid.",
    )
    json_flag(p)
    p.set_defaults(func=_doctor)


def report(args: argparse.Namespace) -> tuple[dict[str, Any], int]:
    """The doctor's findings as a JSON-able dict, and the exit status (also for ``bundle``)."""
    from gateway.config import config_path, load
    from gateway.errors import ConfigError
    from gateway.ops import control_client as control
    from gateway.ops.checks import FAIL, Check, exit_code, summary
    from gateway.ops.doctor import run_checks

    path = config_path(getattr(args, "config", None))
    try:
        cfg = load(path)
    except ConfigError as err:
        checks = [
            Check(
                "config",
                FAIL,
                f"{path}: {issue}",
                "fix the config (`gatewayctl config check` lists every problem)",
            )
            for issue in err.issues
        ]
        return _result(checks, summary(checks), 2), 2
    daemon = control.ping(cfg.gateway.control_socket)
    snapshot = None
    if daemon:
        try:
            snapshot = control.call(cfg.gateway.control_socket, {"cmd": "status"}, 10.0)
        except (control.DaemonUnreachable, control.RequestError):
            daemon = None
    checks = run_checks(cfg, daemon=daemon, snapshot=snapshot)
    code = exit_code(checks)
    return _result(checks, summary(checks), code), code


def _result(checks: list[Any], counts: dict[str, int], code: int) -> dict[str, Any]:
    return {
        "ok": code == 0,
        "exit": code,
        "summary": counts,
        "failing": [c.name for c in checks if c.status == "FAIL"],
        "warnings": [c.name for c in checks if c.status == "WARN"],
        "checks": [c.as_dict() for c in checks],
    }


def _doctor(args: argparse.Namespace) -> int:
    result, code = report(args)
    if getattr(args, "json", False):
        emit_json(result)
        return code
    rows = [
        [
            tone(c["status"]),
            c["name"],
            paint(f"LED {c['fault']}", "red") if c["fault"] and c["status"] != "PASS" else "",
            c["detail"],
        ]
        for c in result["checks"]
    ]
    print(table(["", "CHECK", "CODE", "DETAIL"], rows))
    fixes = [c for c in result["checks"] if c["status"] in ("WARN", "FAIL") and c["fix"]]
    if fixes:
        print("\nWhat to do")
        for c in fixes:
            print(f"  {tone(c['status'])} {c['name']}: {c['fix']}")
    s = result["summary"]
    verdict = f"{s['PASS']} passed, {s['WARN']} warning(s), {s['FAIL']} failed, {s['SKIP']} skipped"
    if result["failing"]:
        verdict += f" — failing: {', '.join(result['failing'])}"
    print("\n" + verdict)
    return code
