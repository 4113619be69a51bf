"""The gateway's exception tree.

Drivers translate library errors at their boundary (``raise DriverError(...) from err``), so the
runner only ever has to know these types.
"""

from __future__ import annotations

from dataclasses import dataclass


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a config file: where (a TOML path) and what was expected."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(GatewayError):
    """A config is invalid; carries every issue found, not just the first."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


class DriverNotFound(GatewayError):
    """The config names a driver that does not exist or cannot be imported."""


class DriverError(GatewayError):
    """The link to a terminal is broken; the runner closes, backs off and reopens.

    ``fault`` is the LED fault code this condition maps to (PRODUCT.md §5), if any:
    1 terminal unreachable, 2 serial port missing.
    """

    def __init__(self, message: str, *, fault: int | None = None) -> None:
        super().__init__(message)
        self.fault = fault


class StoreError(GatewayError):
    """The SQLite store failed (corrupt file, disk full, locked)."""
