"""One check's verdict, shared by ``doctor`` and the broker's network checks.

PASS / WARN / FAIL / SKIP, the LED fault code where one applies (the same codes as the red
LED and ``status``), and a one-line fix a technician can follow without reading source code.
Checks never raise: :func:`guarded` turns a crash inside one into a FAIL of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

PASS, WARN, FAIL, SKIP = "PASS", "WARN", "FAIL", "SKIP"


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str
    fix: str | None = None
    fault: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def guarded(name: str, fn: Callable[..., Check | Iterable[Check]], *args: Any) -> list[Check]:
    """Run one check (or a group); a crash inside it becomes a FAIL, never an exception."""
    try:
        out = fn(*args)
    except Exception as err:
        return [Check(name, FAIL, f"the check itself failed: {type(err).__name__}: {err}")]
    return [out] if isinstance(out, Check) else list(out)


def exit_code(checks: list[Check]) -> int:
    """0 all PASS/SKIP; 1 any WARN or FAIL (documented in docs/cli.md)."""
    return 1 if any(c.status in (WARN, FAIL) for c in checks) else 0


def summary(checks: list[Check]) -> dict[str, int]:
    return {s: sum(1 for c in checks if c.status == s) for s in (PASS, WARN, FAIL, SKIP)}
