"""Which rows go into the next message: the publisher's cursor, re-sends and size limits.

A mixin of :class:`gateway.uplink.publisher.Publisher` (split out to keep that module
readable); it runs only on the publisher's thread. The cursor is the highest seq leased on
this connection; it rewinds on ``wake(rewind=True)`` and when nothing is in flight while
pending rows remain below it (issue 13). A batch is cut to the broker's message limit; a
seq marked solo travels alone; a punch larger than the limit is dead-lettered, never sent.
"""

from __future__ import annotations

from gateway.config import MqttSection
from gateway.store.db import Row, Store
from gateway.uplink.pubstate import Flight


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

    def _dead(self, seqs: list[int], reason: str) -> None: ...

    def _next_rows(self) -> list[Row]:
        limit = self.cfg.batch_max_punches
        if self._retry:
            want, self._retry = self._retry[:limit], self._retry[limit:]
            rows = self.store.rows(want)
        else:
            rows = self._lease(limit)
        return self._fit(rows)

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
        return out
