"""The punch: one attendance event, as drivers produce it and as the cloud receives it.

The wire shape is PRODUCT.md §4 (``docs/schema/punch.schema.json``). ``seq`` and
``received_at`` are assigned by the store when the punch is committed, not by drivers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# ZK attendance states (the "punch"/state byte a user selects on the terminal's keypad).
STATES: dict[int, str] = {
    0: "check_in",
    1: "check_out",
    2: "break_out",
    3: "break_in",
    4: "overtime_in",
    5: "overtime_out",
}
STATE_NAMES = frozenset(STATES.values()) | {"unknown"}

# ZK verify modes (how the user proved who they were).
VERIFY: dict[int, str] = {
    0: "password",  # 0 is "password" on most firmware (also used for "any")
    1: "fingerprint",
    2: "card",  # some firmware use 2 for card (16-byte records)
    3: "password",
    4: "card",
    15: "face",
    25: "palm",
}
VERIFY_NAMES = frozenset(VERIFY.values()) | {"unknown", "manual"}

SOURCES = ("device", "manual")


def state_name(code: int | None) -> str:
    """Translate a raw state code; unknown codes stay visible as ``unknown``."""
    return STATES.get(code, "unknown") if code is not None else "unknown"


def verify_name(code: int | None) -> str:
    """Translate a raw verify code; unknown codes stay visible as ``unknown``."""
    return VERIFY.get(code, "unknown") if code is not None else "unknown"


@dataclass(frozen=True, slots=True)
class Punch:
    """One punch as a driver reports it (before the store gives it a ``seq``)."""

    event_id: str
    terminal: str
    driver: str
    user_id: str
    time: datetime  # timezone-aware
    state: str = "unknown"
    verify: str = "unknown"
    terminal_sn: str | None = None
    state_code: int | None = None
    verify_code: int | None = None
    source: str = "device"
    clock_synced: bool = True
    entered_by: str | None = None
    reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # raw fields worth keeping

    def __post_init__(self) -> None:
        if self.time.tzinfo is None:
            raise ValueError("Punch.time must be timezone-aware")

    def to_record(self) -> dict[str, Any]:
        """The JSON object of §4, without ``seq`` and ``received_at`` (the store adds them)."""
        rec: dict[str, Any] = {
            "event_id": self.event_id,
            "terminal": self.terminal,
            "terminal_sn": self.terminal_sn,
            "driver": self.driver,
            "user_id": self.user_id,
            "time": self.time.isoformat(timespec="seconds"),
            "state": self.state,
            "state_code": self.state_code,
            "verify": self.verify,
            "verify_code": self.verify_code,
            "source": self.source,
            "clock_synced": self.clock_synced,
        }
        if self.source == "manual":
            rec["entered_by"] = self.entered_by
            rec["reason"] = self.reason
        if self.extra:
            rec["raw"] = dict(self.extra)
        return rec
