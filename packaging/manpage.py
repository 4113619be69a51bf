"""Write the ``gatewayctl(1)`` man page from the argparse parser (issue 17).

The page is derived from ``gateway.cli.build_parser()`` so the options are written once: a new
command or option shows up in the man page of the next package build by itself.

Usage: ``python packaging/manpage.py [--date YYYY-MM-DD] > gatewayctl.1`` with the source tree
being packaged first on ``sys.path`` (``scripts/build-deb.sh`` sets ``PYTHONPATH``).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime


def esc(text: str) -> str:
    """Escape text for roff: backslashes, hyphens (so they are not hyphenation points)."""
    out = text.replace("\\", "\\e").replace("-", "\\-")
    lines = []
    for line in out.splitlines() or [""]:
        # A line starting with . or ' would be read as a request.
        lines.append("\\&" + line if line[:1] in (".", "'") else line)
    return "\n".join(lines)


def _option_label(action: argparse.Action) -> str:
    if action.option_strings:
        names = ", ".join(f"\\fB{esc(o)}\\fR" for o in action.option_strings)
        if action.nargs == 0:
            return names
        meta = action.metavar or (action.dest.upper() if not action.choices else None)
        if meta is None:
            meta = "{" + ",".join(str(c) for c in action.choices or ()) + "}"
        return f"{names} \\fI{esc(str(meta))}\\fR"
    meta = action.metavar or action.dest
    return f"\\fI{esc(str(meta))}\\fR"


def _options(parser: argparse.ArgumentParser) -> list[str]:
    out: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
            continue
        if action.help == argparse.SUPPRESS:
            continue
        out += [".TP", _option_label(action), esc(action.help or "")]
        if action.choices and not isinstance(action.choices, dict):
            out.append(esc("one of: " + ", ".join(str(c) for c in action.choices)))
    return out


def _subparsers(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return list(action.choices.items())
    return []


def _usage(parser: argparse.ArgumentParser) -> str:
    text = parser.format_usage().strip()
    return text.removeprefix("usage: ")


def _command(name: str, parser: argparse.ArgumentParser, level: int) -> list[str]:
    out = [".SS" if level == 1 else ".TP", f"\\fB{esc(name)}\\fR"]
    if level > 1:
        out.append("")
    out += [".nf", esc(_usage(parser)), ".fi"]
    if parser.description:
        out += [".PP", esc(parser.description)]
    opts = _options(parser)
    if opts:
        out += [".RS", *opts, ".RE"]
    for child, sub in _subparsers(parser):
        out += _command(f"{name} {child}", sub, level + 1)
    return out


def render(parser: argparse.ArgumentParser, version: str, date: str) -> str:
    """The whole page as roff source."""
    out = [
        f'.TH GATEWAYCTL 1 "{date}" "attendance-gateway {esc(version)}" "User Commands"',
        ".SH NAME",
        "gatewayctl \\- run and inspect the attendance gateway",
        ".SH SYNOPSIS",
        ".nf",
        esc(_usage(parser)),
        ".fi",
        ".SH DESCRIPTION",
        esc(parser.description or ""),
        ".PP",
        esc(
            "Every command prints human output by default and JSON with --json. The "
            "options of each command are listed under COMMANDS."
        ),
        ".SH OPTIONS",
        *_options(parser),
        ".SH COMMANDS",
    ]
    for name, sub in _subparsers(parser):
        out += _command(name, sub, 1)
    out += [
        ".SH EXIT STATUS",
        esc(parser.epilog or ""),
        ".SH FILES",
        ".TP",
        "\\fI/etc/attendance\\-gateway/config.toml\\fR",
        "the configuration (a dpkg conffile: kept across upgrades)",
        ".TP",
        "\\fI/var/lib/attendance\\-gateway/\\fR",
        "the punch store and its backups (kept when the package is purged)",
        ".TP",
        "\\fI/run/attendance\\-gateway/control.sock\\fR",
        "the running daemon's control socket (group attgw)",
        ".SH SEE ALSO",
        "\\fBsystemctl\\fR(1), \\fBjournalctl\\fR(1);",
        esc("/opt/attendance-gateway/docs/install.md and troubleshooting.md"),
        "",
    ]
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--date", default=datetime.now(UTC).strftime("%Y-%m-%d"))
    args = ap.parse_args()
    from gateway import __version__
    from gateway.cli import build_parser

    sys.stdout.write(render(build_parser(), __version__, args.date))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
