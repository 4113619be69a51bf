"""Terminal output for ``gatewayctl``: aligned tables, colour, progress, durations.

Colour only when stdout is a TTY and ``$NO_COLOR`` is unset (https://no-color.org/), and
never in ``--json`` output. Progress bars and spinners go to stderr and only on a TTY, so a
piped or scripted run sees clean output. Standard library only: ``status`` imports this.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

_SPIN = "|/-\\"
_CODES = {"red": "31", "green": "32", "yellow": "33", "blue": "34", "bold": "1", "dim": "2"}
#: PASS/WARN/FAIL and terminal states → colour.
TONE = {
    "PASS": "green",  # nosec B105 # a colour name, not a password
    "WARN": "yellow",
    "FAIL": "red",
    "SKIP": "dim",
    "INFO": "blue",
    "online": "green",
    "offline": "red",
    "fault": "red",
    "paused": "yellow",
    "connected": "green",
    "down": "red",
    "stopped": "yellow",
}


def use_colour(stream: TextIO | None = None) -> bool:
    stream = stream or sys.stdout
    return "NO_COLOR" not in os.environ and hasattr(stream, "isatty") and stream.isatty()


def paint(text: str, colour: str | None, stream: TextIO | None = None) -> str:
    if not colour or not use_colour(stream):
        return text
    return f"\033[{_CODES[colour]}m{text}\033[0m"


def tone(word: str) -> str:
    """``word`` coloured by its meaning (PASS green, FAIL red...)."""
    return paint(word, TONE.get(word))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], indent: str = "  ") -> str:
    """Columns padded to their widest cell; colour codes do not count towards width."""
    cells = [[_cell(c) for c in r] for r in rows]
    widths = [len(h) for h in headers]
    for r in cells:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], _visible(c))
    lines = [
        indent
        + "  ".join(paint(h.ljust(widths[i]), "bold") for i, h in enumerate(headers)).rstrip()
    ]
    for r in cells:
        lines.append(
            indent
            + "  ".join(c + " " * (widths[i] - _visible(c)) for i, c in enumerate(r)).rstrip()
        )
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _visible(text: str) -> int:
    out, skip = 0, False
    for ch in text:
        if ch == "\033":
            skip = True
        elif skip and ch == "m":
            skip = False
        elif not skip:
            out += 1
    return out


def age(seconds: float | None) -> str:
    """``42 s``, ``7 min``, ``3.5 h``, ``2.1 d``."""
    if seconds is None:
        return "-"
    s = float(seconds)
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


def emit_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str, ensure_ascii=False))


class Progress:
    """A bar on stderr when it is a TTY (``total`` known) or a spinner; silent otherwise."""

    def __init__(self, label: str, total: int | None = None, *, force: bool = False) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.enabled = force or (sys.stderr.isatty() and "GATEWAYCTL_NO_PROGRESS" not in os.environ)
        self._t0 = time.monotonic()
        self._last = 0.0
        self._spin = 0

    def update(self, done: int | None = None, *, note: str = "") -> None:
        if done is not None:
            self.done = done
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.1:
            return
        self._last = now
        elapsed = now - self._t0
        if self.total:
            frac = min(1.0, self.done / self.total)
            bar = "#" * int(frac * 30)
            text = f"{self.label} [{bar:<30}] {self.done}/{self.total} {frac:4.0%}"
        else:
            self._spin += 1
            text = f"{self.label} {_SPIN[self._spin % 4]} {elapsed:.0f} s"
        sys.stderr.write(f"\r\033[K{text} {note}")
        sys.stderr.flush()

    def finish(self, note: str = "") -> None:
        if self.enabled:
            sys.stderr.write(f"\r\033[K{note + chr(10) if note else ''}")
            sys.stderr.flush()


def json_flag(parser: Any) -> None:
    """``--json`` after the command too (``gatewayctl status --json``), not only before it."""
    import argparse

    parser.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
    )
