"""Issue 12: every global option is accepted before or after the command, on every command.

The shipped unit runs ``gatewayctl run --config ...``; argparse rejected it (exit 2), so the
service never started. The parse test walks every (sub)command the parser knows, so a
command added later is covered without an edit here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from gateway.cli import build_parser

#: Arguments a command needs to parse at all (positional or required options).
REQUIRED: dict[tuple[str, ...], list[str]] = {
    ("sim",): ["zk"],
    ("completion",): ["bash"],
    ("restore",): ["f.db"],
    ("queue", "resend"): ["--dead"],
    ("remote", "keygen"): ["--name", "ops"],
    ("queue", "export"): ["--since", "2026-11-23"],
    ("punch", "add"): ["--terminal", "t", "--user", "1", "--reason", "r", "--time",
                       "2026-11-23T08:00", "--state", "check_in"],
}


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every runnable command (a parent whose action is required is not one)."""
    out: list[tuple[str, ...]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                if not any(
                    isinstance(a, argparse._SubParsersAction) and a.required
                    for a in child._actions
                ):
                    out.append((*path, name))
                out += commands(child, (*path, name))
    return out


ALL = commands(build_parser())


def _args(cmd: tuple[str, ...]) -> list[str]:
    extra = REQUIRED.get(cmd, [])
    if cmd[:1] == ("terminal",) and len(cmd) == 2:
        extra = ["t1"]
    return [*cmd, *extra]


def test_the_walk_finds_the_commands_the_unit_and_docs_use() -> None:
    for cmd in [("run",), ("status",), ("doctor",), ("queue", "export"), ("backup",)]:
        assert cmd in ALL


@pytest.mark.parametrize("cmd", ALL, ids=" ".join)
def test_config_and_json_after_the_command(cmd: tuple[str, ...]) -> None:
    parser = build_parser()
    if cmd == ("sim",):
        # Everything after the simulator's name is the simulator's; before it, ours.
        ns = parser.parse_args(["sim", "--config", "/x.toml", "--json", "zk", "--port", "1"])
        assert (ns.config, ns.json, ns.args) == ("/x.toml", True, ["--port", "1"])
        return
    argv = _args(cmd)
    # Options after the command's own positionals (as in the unit: run --config PATH).
    ns = parser.parse_args([*argv, "--config", "/x.toml", "--json"])
    assert ns.config == "/x.toml" and ns.json is True, cmd
    # ...and before it, as always.
    ns = parser.parse_args(["--config", "/y.toml", "--json", *argv])
    assert ns.config == "/y.toml" and ns.json is True, cmd
    # Absent: the defaults, not SUPPRESS leaking through.
    ns = parser.parse_args(argv)
    assert ns.config is None and ns.json is False, cmd


def test_after_the_command_wins_like_the_last_option_given() -> None:
    ns = build_parser().parse_args(["--config", "/a.toml", "status", "--config", "/b.toml"])
    assert ns.config == "/b.toml"


def test_config_after_the_command_is_the_one_used(tmp_path: Path) -> None:
    """A real process: the path given after the command is the one read."""
    import subprocess
    import sys

    missing = tmp_path / "nowhere.toml"
    proc = subprocess.run(
        [sys.executable, "-m", "gateway", "config", "check", "--config", str(missing), "--json"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert str(missing) in proc.stdout and '"ok": false' in proc.stdout
