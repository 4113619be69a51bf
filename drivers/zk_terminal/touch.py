"""Light touch: decide at each poll whether the terminal's log must be read again.

A full download of a 100 000-record log is ~4 MB, tens of seconds of a busy terminal on a
real device's CPU and link (issue 14; users of peer tools report hung terminals under
frequent polls, notes §3 #14). There is no incremental read (fananimi/pyzk#62), but the
free-sizes reply (~100 bytes) says how many records the log holds. So each poll:

* the log is read when its record count differs from the last read's (new punches, a
  cleared or rotated log), and then only its new records when the rest is provably
  unchanged (``tail.py``: ~4 KB plus the new records);
* it is also read whatever the count says when the driver asks (``force``: a live session
  that broke, an event it could not use);
* the whole log is downloaded every ``full_download_interval_s`` (the safety period,
  default 6 h), which re-checks the whole committed prefix and catches what a count cannot
  see (a log cleared and refilled to the same size between two polls).

Live events are delivered at once, as before. They are deliberately not used to explain a
count change away: an event that arrives after the download holding its record, counted
against a punch the live path missed, would hide that punch until the safety period (a
first version did that; found in review); a tail read costs little enough to settle it.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The reason that asks for the whole log (not a tail read: ``tail.py``).
SAFETY = "safety period"


@dataclass
class LightTouch:
    """Per-connection bookkeeping; ``full_every_s`` 0 downloads the whole log at every poll."""

    full_every_s: float
    expected: int | None = None
    last_full: float | None = None
    polls: int = 0
    downloads: int = 0
    last_reason: str = ""

    def reset(self) -> None:
        """Forget everything (a new connection: the next poll reads the whole log)."""
        self.expected = self.last_full = None

    def force(self) -> None:
        """Read the log at the next poll (e.g. a live event that could not be used)."""
        self.expected = None

    def downloaded(self, records: int, now: float, *, whole: bool) -> None:
        self.expected = records
        if whole or self.last_full is None:
            self.last_full = now
        self.downloads += 1

    def reason(self, records: int, now: float) -> str | None:
        """Why the log must be read now (None: the cheap check found nothing new)."""
        self.polls += 1
        why: str | None = None
        if self.last_full is None or now - self.last_full >= self.full_every_s:
            why = SAFETY
        elif self.expected is None:
            why = "asked for (live session broke or an event could not be used)"
        elif records != self.expected:
            why = f"record count {records} != {self.expected} at the last read"
        self.last_reason = why or "unchanged"
        return why
