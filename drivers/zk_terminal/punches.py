"""ZK records and live events → punches, with the deterministic ``event_id``.

The same attendance record read from the log and seen as a live event must give the same
``event_id`` (``zk-{serial}-{user}-{local time}-{state}``), so consumers and the store's
duplicate check collapse the two.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from gateway.pipeline.punch import Punch, state_name, verify_name


def event_id(serial: str | None, user_id: str, when: datetime, state: int) -> str:
    # %-formatting: ~3x faster than strftime on a 100k-record log
    t = "%04d%02d%02dT%02d%02d%02d" % (  # noqa: UP031
        when.year,
        when.month,
        when.day,
        when.hour,
        when.minute,
        when.second,
    )
    return f"zk-{serial}-{user_id}-{t}-{state}"


def make_punch(
    terminal: str,
    serial: str | None,
    zone: ZoneInfo,
    *,
    user_id: str,
    when: datetime,
    state: int,
    verify: int,
    clock_synced: bool,
    extra: dict[str, Any],
) -> Punch:
    """One punch from a record's fields (``when`` is the terminal's naive local time)."""
    return Punch(
        event_id=event_id(serial, user_id, when, state),
        terminal=terminal,
        driver="zk",
        user_id=user_id,
        time=when.replace(tzinfo=zone),
        state=state_name(state),
        verify=verify_name(verify),
        terminal_sn=serial,
        state_code=state,
        verify_code=verify,
        clock_synced=clock_synced,
        extra=extra,
    )
