"""Delivered marks held back a few seconds, then written with other work (issue 18).

A card swipe used to cost two durable transactions: its insert, then, a moment later, its
delivered mark; each appends several pages to the WAL and fsyncs it (82 KB written per swipe
on the bench). The mark carries no promise of its own: a row still pending after a crash is
published again, which at-least-once delivery allows (PRODUCT.md §4). So the publisher hands
acked seqs to :meth:`DeferredMarks.mark_delivered_later`; they are written

* inside the next insert's transaction (a swipe's insert carries the previous swipe's mark:
  the pages they touch are mostly the same ones), or
* by :meth:`DeferredMarks.flush_marks` once the oldest is ``MARK_DELAY_S`` old or
  ``MARK_BATCH`` are waiting, and always on reconnect, on stop and on close.

What a crash costs: the punches acked in the last ``MARK_DELAY_S`` seconds are sent again
(same ``event_id`` and ``seq``: consumers dedupe). Until written they are in ``unmarked``
(the publisher never leases them again) but still pending in :meth:`Store.figures`: the
figures are the file's, which another process (``gatewayctl`` with the daemon stopped, a
backup) reads too. A backup taken meanwhile holds them pending; a restore marks delivered
what the current store delivered (:mod:`gateway.store.backup`), so nothing is sent twice.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable

MARK_DELAY_S = 5.0
MARK_BATCH = 1000  # ~3 ms of the publisher thread here (100 000 rows marked in 0.29 s)


class DeferredMarks:
    """Mixin of :class:`gateway.store.db.Store` (its writer lock and its immediate marks)."""

    _lock: threading.RLock
    _later: list[int]
    _later_since: float | None

    def mark_delivered(self, seqs: Iterable[int]) -> int:
        raise NotImplementedError  # Store's

    def _mark_in(self, conn: sqlite3.Connection, ids: list[int]) -> int:
        raise NotImplementedError  # Store's

    def mark_delivered_later(self, seqs: Iterable[int]) -> int:
        """Queue acked seqs for a later mark; return how many were written now (a flush
        falls due when ``MARK_BATCH`` are waiting)."""
        with self._lock:
            self._later += seqs
            if self._later_since is None and self._later:
                self._later_since = time.monotonic()
        return self.flush_marks()

    def flush_marks(self, force: bool = False) -> int:
        """Write the queued marks if due (or ``force``); never raises (see mark_delivered)."""
        with self._lock:
            if not self._later:
                return 0
            age = time.monotonic() - (self._later_since or 0.0)
            if not force and len(self._later) < MARK_BATCH and age < MARK_DELAY_S:
                return 0
            ids, self._later, self._later_since = self._later, [], None
            return self.mark_delivered(ids)

    def _piggyback(self, conn: sqlite3.Connection) -> list[int]:
        """Inside a write transaction (lock held): write the queued marks with it. The
        caller puts the returned ids back with :meth:`_unpiggyback` if the commit fails."""
        ids, self._later, self._later_since = self._later, [], None
        if ids:
            self._mark_in(conn, ids)
        return ids

    def _unpiggyback(self, ids: list[int]) -> None:
        if ids:
            self._later[:0] = ids
            self._later_since = self._later_since or time.monotonic()

    @property
    def marks_waiting(self) -> int:
        return len(self._later)
