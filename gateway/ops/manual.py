"""Manual punches (补卡): one validation rule for the control socket and the offline path.

A technician enters a punch that a terminal failed to record. It must look like any other
punch on the wire (``docs/schema/punch.schema.json``) with ``source = "manual"``,
``verify = "manual"``, who entered it and why; the store writes the ``manual_audit`` row in
the same transaction (``Store.add_manual``), and that table is never pruned. An identical
manual punch (terminal, user, time, state) entered twice is refused there (issue 12/13).
"""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from gateway.pipeline.ids import uuid7
from gateway.pipeline.punch import STATES, Punch

MAX_AGE_DAYS = 60  # older than this is not a forgotten punch but a payroll correction
FUTURE_GRACE_S = 120  # the technician's watch may be a little ahead of the Pi
USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
STATE_CODES = {name: code for code, name in STATES.items()}
MAX_REASON = 500
HAS_TIME = re.compile(r"\d[Tt ]\d")  # a date, then the time part ("2026-11-23T08:59")


class ManualPunchError(ValueError):
    """The manual punch is refused; the message says which field and why."""


def who_am_i(env: Mapping[str, str] | None = None) -> str:
    """The technician: the sudo caller (not ``root``), else the login, plus the SSH client."""
    env = os.environ if env is None else env
    user = env.get("SUDO_USER") or env.get("USER") or env.get("LOGNAME")
    if not user:
        try:
            user = getpass.getuser()
        except Exception:  # no passwd entry (a container): still record something
            user = f"uid {os.getuid()}"
    ssh = env.get("SSH_CONNECTION", "").split()
    return f"{user} (ssh from {ssh[0]})" if ssh else user


def parse_time(text: str, zone: ZoneInfo) -> datetime:
    """ISO 8601 (``2026-11-23T08:59``, ``2026-11-23 08:59:12``, with or without offset);
    a naive time is local time in ``[gateway] timezone``, like the terminals' clocks.

    A date alone is refused (issue 12): ``fromisoformat`` reads it as midnight, and a
    punch at 00:00 that nobody asked for is worse than an error."""
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ManualPunchError(
            f"--time: not a date and time: {text!r} (expected e.g. 2026-11-23T08:59)"
        ) from None
    if not HAS_TIME.search(text.strip()):
        raise ManualPunchError(
            f"--time: {text.strip()!r} has no time of day; give the hour and minute too "
            "(e.g. 2026-11-23T08:59)"
        )
    return dt.replace(tzinfo=zone) if dt.tzinfo is None else dt.astimezone(zone)


def make_manual_punch(
    fields: Mapping[str, Any], *, terminals: Iterable[str], zone: ZoneInfo, now: datetime
) -> Punch:
    """Validate ``terminal``, ``user_id``, ``time``, ``state``, ``reason``, ``entered_by``."""
    names = list(terminals)
    terminal = _text(fields, "terminal")
    if terminal not in names:
        raise ManualPunchError(
            f"--terminal: no terminal named {terminal!r} in the config; "
            f"configured: {', '.join(names) or 'none'}"
        )
    user = _text(fields, "user_id").strip()
    if not USER_ID.match(user):
        raise ManualPunchError(
            f"--user: expected the terminal's user id (letters, digits, '_', '.', '@', '-', "
            f"at most 64), got {user!r}"
        )
    when = parse_time(_text(fields, "time"), zone)
    if when > now + timedelta(seconds=FUTURE_GRACE_S):
        raise ManualPunchError(f"--time: {when.isoformat()} is in the future")
    if when < now - timedelta(days=MAX_AGE_DAYS):
        raise ManualPunchError(
            f"--time: {when.isoformat()} is more than {MAX_AGE_DAYS} days ago; "
            "corrections that old belong in the HR system"
        )
    state = _text(fields, "state").strip().lower().replace("-", "_")
    if state not in STATE_CODES:
        raise ManualPunchError(f"--state: expected one of {', '.join(STATE_CODES)}, got {state!r}")
    reason = " ".join(_text(fields, "reason").split())
    if not reason:
        raise ManualPunchError("--reason: say why the punch is entered by hand")
    if len(reason) > MAX_REASON:
        raise ManualPunchError(f"--reason: at most {MAX_REASON} characters")
    entered_by = _text(fields, "entered_by").strip()
    if not entered_by:
        raise ManualPunchError("entered_by: who enters the punch is required")
    return Punch(
        event_id=f"manual-{uuid7()}",
        terminal=terminal,
        driver="manual",
        user_id=user,
        time=when,
        state=state,
        state_code=STATE_CODES[state],
        verify="manual",
        verify_code=None,
        terminal_sn=None,
        source="manual",
        clock_synced=True,  # a person asserted the time; no device clock was involved
        entered_by=entered_by[:200],
        reason=reason,
    )


def _text(fields: Mapping[str, Any], key: str) -> str:
    value = fields.get(key)
    if not isinstance(value, str):
        raise ManualPunchError(f"{key}: required (a string)")
    return value
