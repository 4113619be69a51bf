"""Typed reading of TOML tables that records every problem with its TOML path.

Used by ``gateway.config`` for the gateway's own sections and by each driver for its
``[[terminals]]`` table, so a config with five mistakes reports five lines, not one.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from gateway.errors import ConfigIssue

T = TypeVar("T")
_MISSING: Any = object()


def show(value: object) -> str:
    """A value as it reads in TOML, for error messages (``"9600x"``, ``true``, ``12``)."""
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


class Fields:
    """Reads keys of one table; collects issues into a shared list.

    Each getter returns the value (or the default) and, on a problem, records an issue and
    returns the default so that validation goes on and every mistake gets reported.
    """

    def __init__(
        self, table: Mapping[builtins.str, Any], path: builtins.str, issues: list[ConfigIssue]
    ) -> None:
        self.table = table
        self.path = path
        self.issues = issues
        self._seen: set[builtins.str] = set()
        self._start = len(issues)

    # -- helpers -------------------------------------------------------------------------
    def key_path(self, key: builtins.str) -> builtins.str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: builtins.str, message: builtins.str) -> None:
        self.issues.append(ConfigIssue(self.key_path(key) if key else self.path, message))

    @property
    def ok(self) -> bool:
        """True while no issue was recorded through this reader."""
        return len(self.issues) == self._start

    def _get(self, key: builtins.str, default: Any) -> Any:
        self._seen.add(key)
        if key in self.table:
            return self.table[key]
        if default is _MISSING:
            self.error(key, "required key is missing")
        return _MISSING

    def has(self, key: builtins.str) -> bool:
        return key in self.table

    # -- getters -------------------------------------------------------------------------
    def str(self, key: builtins.str, default: Any = _MISSING, *, allow_empty: bool = False) -> Any:
        v = self._get(key, default)
        if v is _MISSING:
            return None if default is _MISSING else default
        if not isinstance(v, str) or (not allow_empty and not v.strip()):
            self.error(key, f"expected a non-empty string, got {show(v)}")
            return None if default is _MISSING else default
        return v

    def int(
        self,
        key: builtins.str,
        default: Any = _MISSING,
        *,
        min: builtins.int | None = None,
        max: builtins.int | None = None,
    ) -> Any:
        v = self._get(key, default)
        if v is _MISSING:
            return None if default is _MISSING else default
        if (
            isinstance(v, bool)
            or not isinstance(v, int)
            or (min is not None and v < min)
            or (max is not None and v > max)
        ):
            lo = "" if min is None else str(min)
            hi = "" if max is None else str(max)
            self.error(key, f"expected an integer {lo}…{hi}".rstrip("…") + f", got {show(v)}")
            return None if default is _MISSING else default
        return v

    def number(
        self,
        key: builtins.str,
        default: Any = _MISSING,
        *,
        min: float | None = None,
        max: float | None = None,
    ) -> Any:
        v = self._get(key, default)
        if v is _MISSING:
            return None if default is _MISSING else default
        if (
            isinstance(v, bool)
            or not isinstance(v, int | float)
            or (min is not None and v < min)
            or (max is not None and v > max)
        ):
            lo = "" if min is None else f"{min:g}"
            hi = "" if max is None else f"{max:g}"
            self.error(key, f"expected a number {lo}…{hi}, got {show(v)}")
            return None if default is _MISSING else default
        return float(v)

    def bool(self, key: builtins.str, default: Any = _MISSING) -> Any:
        v = self._get(key, default)
        if v is _MISSING:
            return None if default is _MISSING else default
        if not isinstance(v, bool):
            self.error(key, f"expected true or false, got {show(v)}")
            return None if default is _MISSING else default
        return v

    def choice(self, key: builtins.str, choices: Iterable[T], default: Any = _MISSING) -> Any:
        options = list(choices)
        v = self._get(key, default)
        if v is _MISSING:
            return None if default is _MISSING else default
        if v not in options or isinstance(v, bool):
            shown = ", ".join(show(c) for c in options)
            self.error(key, f"expected one of {shown}, got {show(v)}")
            return None if default is _MISSING else default
        return v

    def table_of(self, key: builtins.str) -> Mapping[builtins.str, Any]:
        v = self._get(key, {})
        if v is _MISSING:
            return {}
        if not isinstance(v, Mapping):
            self.error(key, f"expected a table, got {show(v)}")
            return {}
        return v

    def ignore(self, *keys: builtins.str) -> None:
        """Mark keys as known without reading them (e.g. read by someone else)."""
        self._seen.update(keys)

    def done(self) -> None:
        """Reject every key nobody read: a typo must not silently fall back to a default."""
        for key in self.table:
            if key not in self._seen:
                self.error(key, "unknown key")
