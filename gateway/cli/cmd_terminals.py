"""``gatewayctl terminals`` and ``gatewayctl terminal probe|sync-clock|pull NAME``."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import Any

from gateway.cli import local
from gateway.cli.output import Progress, emit_json, json_flag, table, tone


def register(sub: Any) -> None:
    p = sub.add_parser(
        "terminals",
        help="list the terminals and their state",
        description="List every configured terminal with its state, last "
        "punch, clock skew and log usage (stored state when the daemon is "
        "stopped). Exit 0 all online, 1 otherwise.",
    )
    json_flag(p)
    p.set_defaults(func=_list)
    t = sub.add_parser(
        "terminal",
        help="probe a terminal, set its clock, pull its log",
        description="Act on one terminal through the running daemon.",
    )
    tsub = t.add_subparsers(dest="terminal_command", metavar="ACTION", required=True)
    for name, helptext in (
        (
            "probe",
            "deep probe: firmware, counts, capacity; raw frames for a serial reader "
            "(works without the daemon: a short direct connection)",
        ),
        ("sync-clock", "set the terminal's clock from the Pi (the Pi must be NTP-synced)"),
        (
            "pull",
            "pull the terminal's full log now (a push terminal is asked to re-send it); "
            "duplicates are ignored",
        ),
    ):
        a = tsub.add_parser(name, help=helptext, description=helptext)
        a.add_argument("name", help="terminal name, as in [[terminals]] name")
        a.add_argument(
            "--timeout",
            type=float,
            default=None,
            metavar="S",
            help="give up waiting after S seconds",
        )
        json_flag(a)
        a.set_defaults(func=_action, action=name.replace("-", "_"))


def _list(args: argparse.Namespace) -> int:
    from gateway.cli.cmd_status import gather

    s = local.settings(args)
    snap = gather(s)
    terms = snap.get("terminals", {})
    refused = _refused_push(s)
    if getattr(args, "json", False):
        emit_json({"daemon": snap.get("daemon"), "terminals": terms, "refused": refused})
    else:
        if not snap.get("daemon", {}).get("running"):
            print(local.NOT_RUNNING)
        rows = [
            [
                n,
                t.get("driver"),
                tone(str(t.get("state"))),
                t.get("last_punch_time") or "-",
                t.get("serial") or "-",
                "-" if t.get("clock_skew_s") is None else f"{t['clock_skew_s']:+.0f} s",
                "-" if t.get("log_usage") is None else f"{t['log_usage']:.0%}",
                t.get("detail") or "",
            ]
            for n, t in terms.items()
        ]
        print(
            table(
                ["NAME", "DRIVER", "STATE", "LAST PUNCH", "SERIAL", "SKEW", "LOG", "DETAIL"], rows
            )
        )
        if refused:
            print("\nPush terminals refused (add them to the config if they are ours):")
            print(
                table(
                    ["SERIAL", "ADDRESS", "LAST SEEN", "REQUESTS", "WHY"],
                    [[u.get("serial_number") or "?", u.get("address"), u.get("last_seen"),
                      u.get("requests"), u.get("why")] for u in refused],
                )
            )  # fmt: skip
    return 0 if terms and all(t.get("state") == "online" for t in terms.values()) else 1


def _refused_push(s: local.Settings) -> list[dict[str, Any]]:
    """Push terminals the ``[adms]`` listener refused (issue 15), from its state file."""
    try:
        doc = json.loads((s.data_dir / "adms-state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    unknown = doc.get("unknown", []) if isinstance(doc, dict) else []
    return sorted(
        (u for u in unknown if isinstance(u, dict)),
        key=lambda u: str(u.get("last_seen")),
        reverse=True,
    )


def _action(args: argparse.Namespace) -> int:
    from gateway.ops import control_client as control

    s = local.settings(args)
    if s.terminal(args.name) is None:
        names = ", ".join(str(t.get("name")) for t in s.terminals)
        local.fail(args, f"no terminal named {args.name!r}; configured: {names}", 2)
    timeout = args.timeout or (control.PULL_TIMEOUT_S if args.action == "pull" else 30.0)
    req = {"cmd": args.action, "terminal": args.name, "timeout_s": min(timeout, 3600.0)}
    if args.action == "probe" and control.ping(s.socket) is None:
        result = _direct_probe(args)
    else:
        result = _with_spinner(args, s, req, timeout + 5.0)
    # A refusal is an answer, not a success: a script must see that the clock was not set
    # (issue 12). The terminal says so with done=false and why in "refused".
    refused = isinstance(result, dict) and (
        result.get("done") is False or result.get("opened") is False  # a direct probe failed
    )
    why = (result.get("refused") or result.get("error")) if refused else None
    if getattr(args, "json", False):
        emit_json({"terminal": args.name, "action": args.action, "result": result})
    else:
        _print_result(result)
        if refused:
            print(f"gatewayctl: {args.name}: not done: {why or 'refused'}", file=sys.stderr)
    return 1 if refused else 0


def _with_spinner(
    args: argparse.Namespace, s: local.Settings, req: dict[str, Any], timeout: float
) -> Any:
    """The driver call is one blocking step (a ZK log download): show that it is alive."""
    label = {
        "pull": f"pulling {args.name}'s log",
        "sync_clock": f"setting {args.name}'s clock",
        "probe": f"probing {args.name}",
    }[args.action]
    progress = Progress(label)
    done = threading.Event()

    def spin() -> None:
        while not done.wait(0.2):
            progress.update()

    spinner = threading.Thread(target=spin, name="cli-progress", daemon=True)
    spinner.start()
    try:
        return local.daemon_call(args, s, req, timeout)
    finally:
        done.set()
        spinner.join()
        progress.finish()


def _direct_probe(args: argparse.Namespace) -> dict[str, Any]:
    """Daemon stopped: open the terminal briefly with its own driver, probe, close."""
    from gateway.cli.common import load_config
    from gateway.pipeline import registry
    from gateway.pipeline.driver import DriverContext

    cfg = load_config(args)
    t = next(t for t in cfg.terminals if t.name == args.name)
    driver = registry.load(t.driver)(
        t.name,
        t.options,
        DriverContext(cfg.gateway.id, cfg.gateway.zone, data_dir=str(cfg.gateway.data_dir)),
    )
    if not getattr(args, "json", False):
        print(f"{local.NOT_RUNNING.split(' — ')[0]} — probing {t.name} directly")
    try:
        driver.open()
        return {"via": "direct", "opened": True, **dict(driver.probe())}
    except Exception as err:
        return {
            "via": "direct",
            "opened": False,
            "error": str(err),
            "fault": getattr(err, "fault", None),
            **dict(driver.probe()),
        }
    finally:
        driver.close()


def _print_result(result: Any) -> None:
    if not isinstance(result, dict):
        print(result)
        return
    frames = result.pop("frames", None)
    width = max((len(k) for k in result), default=0)
    for key, value in result.items():
        text = json.dumps(value, default=str) if isinstance(value, dict | list) else value
        print(f"  {key.ljust(width)}  {text}")
    if frames:
        print("\n  recent frames (oldest first):")
        for f in frames[-20:]:
            if isinstance(f, dict):
                extra = f" card {f['card']}" if f.get("card") else ""
                print(
                    f"    {f.get('at', '')}  {f.get('verdict', ''):<12} {f.get('hex', '')}{extra}"
                )
            else:
                print(f"    {f}")
