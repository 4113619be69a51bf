"""Light touch: decide at each poll whether the terminal's log must be downloaded again.

A full download of a 100 000-record log is ~4 MB, tens of seconds of a busy terminal on a
real device's CPU and link (issue 14; users of peer tools report hung terminals under
frequent polls, notes §3 #14). There is no incremental read (fananimi/pyzk#62), but the
free-sizes reply (~100 bytes) says how many records the log holds. So each poll:

* the log is downloaded when its record count is not what the gateway already accounts
  for: the count of the last download plus the distinct punches live events delivered
  since (a punch live events missed, a cleared or rotated log, a user's edit, all change
  the count away from that);
* and in any case every ``full_download_interval_s`` (the safety period, default 6 h),
  which catches what a count cannot see (e.g. a log cleared and refilled to the same size
  between two polls), and whenever the driver asks for it (``force``).

A download reads only the records after the committed prefix when it can (``tail.py``),
except the safety-period one, which reads the whole log and re-checks the whole prefix.
Live events are delivered at once, as before; they only feed the expected count here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: The reason that asks for the whole log (not a tail read: ``tail.py``).
SAFETY = "safety period"
#: Live punches remembered for the expected count (a terminal sees far fewer per period).
MAX_LIVE_IDS = 100_000


@dataclass
class LightTouch:
    """Per-connection bookkeeping; ``full_every_s`` 0 downloads at every poll."""

    full_every_s: float
    expected: int | None = None
    last_full: float | None = None
    live_ids: set[str] = field(default_factory=set)
    polls: int = 0
    downloads: int = 0
    last_reason: str = ""

    def reset(self) -> None:
        """Forget everything (a new connection: the next poll downloads)."""
        self.expected = self.last_full = None
        self.live_ids.clear()

    def force(self) -> None:
        """Download at the next poll (e.g. a live event that could not be used)."""
        self.expected = None

    def live(self, event_id: str) -> None:
        """A live event delivered this punch (duplicates of one punch count once)."""
        if self.expected is not None and len(self.live_ids) < MAX_LIVE_IDS:
            self.live_ids.add(event_id)

    def downloaded(self, records: int, now: float) -> None:
        self.expected, self.last_full = records, now
        self.live_ids.clear()
        self.downloads += 1

    def reason(self, records: int, now: float) -> str | None:
        """Why the log must be downloaded now (None: the cheap check found nothing new)."""
        self.polls += 1
        why: str | None = None
        if self.expected is None or self.last_full is None:
            why = "first poll on this connection, or asked for"
        elif now - self.last_full >= self.full_every_s:
            why = SAFETY
        elif records != self.expected + len(self.live_ids):
            why = (
                f"record count {records} != {self.expected} downloaded + {len(self.live_ids)} live"
            )
        self.last_reason = why or "unchanged"
        return why
