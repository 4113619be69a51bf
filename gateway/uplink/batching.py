"""Which rows go into the next message: the publisher's cursor, re-sends and size limits.

A mixin of :class:`gateway.uplink.publisher.Publisher` (split out to keep that module
readable); it runs only on the publisher's thread. The cursor is the highest seq leased on
this connection; it rewinds on ``wake(rewind=True)`` and when nothing is in flight while
pending rows remain below it (issue 13). A batch is cut to the broker's message limit; a
seq marked solo travels alone; a punch larger than the limit is dead-lettered, never sent.

Backlogs under a publish-rate cap (issue 18): a cloud platform counts messages, not punches
(AWS IoT: 100 publishes/s, 128 KB each). When the pending backlog would take longer than
``BACKLOG_S`` to drain at ``batch_max_punches`` per message and ``max_publish_rate``
messages/s, messages are filled up to the byte limit instead, until less than one second
of work at the configured size is left: a week of a 5 000-person factory (140 000 punches)
drains in seconds, not half a minute. Live punches (a short backlog) keep
``batch_max_punches``.
"""

from __future__ import annotations

from gateway.config import MqttSection
from gateway.store.db import Row, Store
from gateway.uplink.pubstate import Flight

BACKLOG_S = 10.0  # a backlog longer than this at the configured batch size: fill messages
BIG_BATCH_MAX = 5000  # rows per message at most, whatever the byte limit (memory bound)


class BatchPlanner:
    """Row selection for the publisher (state lives on the publisher; see its __init__)."""

    store: Store
    cfg: MqttSection
    _inflight: dict[int, Flight]
    _cursor: int
    _rewound_from: int
    _retry: list[int]
    _solo: set[int]
    _max_bytes: int
    _overhead: int
    _rate: float
    _row_bytes: float = 400.0  # mean wire size of recent rows (sizes a filled message)
    _big: bool = False  # filling messages (a long backlog), until it is nearly drained

    def _dead(self, seqs: list[int], reason: str) -> None: ...

    def _next_rows(self) -> list[Row]:
        limit = self._batch_limit()
        if self._retry:
            want, self._retry = self._retry[:limit], self._retry[limit:]
            rows = self.store.rows(want)
        else:
            rows = self._lease(limit)
        return self._fit(rows)

    def _batch_limit(self) -> int:
        """``batch_max_punches``, or as many as fill a message while a long backlog waits."""
        small = self.cfg.batch_max_punches
        if self._rate * small * BACKLOG_S >= 1e6:  # no real rate cap: the window is the limit
            return small
        pending = self.store.figures()["pending"]
        if pending > self._rate * small * BACKLOG_S:
            self._big = True
        elif pending <= self._rate * small:  # one second of work left at the small size
            self._big = False
        if not self._big:
            return small
        fill = int((self._max_bytes - self._overhead) * 0.9 / self._row_bytes)
        return max(small, min(fill, BIG_BATCH_MAX))

    def _rewind(self) -> None:
        self._rewound_from = max(self._rewound_from, self._cursor)
        self._cursor = 0

    def _lease(self, limit: int) -> list[Row]:
        """The next pending rows after the cursor, minus those already in flight."""
        while True:
            rows = self.store.pending(self._cursor, limit)
            if not rows:
                if self._cursor and not self._retry and not self._punches_in_flight():
                    # Idle: anything pending below the cursor was re-queued behind our back
                    # (another process) or is an ack whose mark is deferred (disk full).
                    older = [r for r in self.store.pending(0, 1) if r.seq <= self._cursor]
                    if older and older[0].seq not in self.store.unmarked:
                        self._rewind()
                        continue
                return rows
            self._cursor = rows[-1].seq
            if self._rewound_from:
                if self._cursor >= self._rewound_from:
                    self._rewound_from = 0  # past everything leased before the rewind
                busy = {s for f in self._inflight.values() for s in f.seqs}
                busy |= set(self._retry) | self.store.unmarked
                rows = [r for r in rows if r.seq not in busy]
                if not rows:
                    continue
            return rows

    def _punches_in_flight(self) -> bool:
        return any(f.topic is None for f in self._inflight.values())

    def _fit(self, rows: list[Row]) -> list[Row]:
        """Cut ``rows`` to one message: under the byte limit; a solo seq travels alone."""
        budget = self._max_bytes - self._overhead
        out: list[Row] = []
        size = 0
        for i, row in enumerate(rows):
            n = len(row.record.encode("utf-8")) + 1
            solo = row.seq in self._solo
            if n > budget:
                self._dead([row.seq], f"too large for the broker: {n} bytes > {budget}")
                continue
            if out and (size + n > budget or solo or out[0].seq in self._solo):
                self._retry[:0] = [r.seq for r in rows[i:]]
                break
            out.append(row)
            size += n
        if out:
            self._row_bytes = max(1.0, size / len(out))
        return out
