"""Faults the ZK simulator can be told to commit, one-shot or persistent.

The simulator's network layer asks this plan before each reply (``take_*``); tests and
technicians arm it through ``ZkSimulator.inject``. Faults that change the device's own
state (corrupt record, invalid date, reboot, log full) live on the simulator itself.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

#: Every fault name ``ZkSimulator.inject`` accepts, with what it does (shown by ``--help``).
FAULTS: dict[str, str] = {
    "drop_mid_download": "close the connection part-way through the next log/user download "
    "(after=bytes of data sent, default half a chunk)",
    "split_replies": "write each reply in two TCP segments with a pause (count=-1: always)",
    "corrupt_record": "overwrite stored record index=N with garbage bytes",
    "invalid_date": "store an impossible date (default 2025-02-30) in record index=N",
    "clock_reset_record": "store a 2000-01-01 time (dead RTC battery) in record index=N",
    "reboot": "close every session and socket; listen again after downtime_s "
    "(clock_reset=True: the RTC restarts at 2000-01-01)",
    "kick_live": "close only the sessions registered for live events (firmware that drops "
    "idle sessions)",
    "slow": "delay each reply by delay_s (count=-1: always)",
    "hang": "stop answering at all until clear_faults() (a wedged terminal)",
    "log_full": "set capacity=N (policy='refuse' or 'cyclic', delete=N oldest)",
    "short_download": "omit the last missing=N records from the next times=K downloads",
    "zero_records": "report 0 records in the next times=K free-sizes replies",
    "coalesce_events": "send queued live events in one TCP write without waiting for ACKs",
    "grid_reads_only": "answer READ_BUFFER ranges that do not start on pyzk's 65472-byte "
    "chunk grid from the grid point below (a firmware without arbitrary ranged reads)",
    "segment": "cut the byte stream of the next count=K bulk answers (PREPARE_DATA, DATA "
    "frames, ACK_OK) at offset at=N, or every=N bytes, pausing pause_s between the pieces "
    "(TCP segmentation that splits frames anywhere; count=-1: always)",
}


@dataclass
class _Plan:
    split: int = 0
    split_pause_s: float = 0.05
    slow_s: float = 0.0
    slow_count: int = 0
    hang: bool = False
    drop_after: int | None = None
    short_missing: int = 0
    short_times: int = 0
    zero_times: int = 0
    coalesce: bool = False
    grid_only: bool = False
    segment_count: int = 0
    segment_at: int = 0
    segment_every: int = 0
    segment_pause_s: float = 0.002


class FaultPlan:
    """Thread-safe switchboard of network-level faults."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._p = _Plan()

    def clear(self) -> None:
        with self._lock:
            self._p = _Plan()

    def arm(self, name: str, **kw: float) -> None:
        """Arm a network fault by name (see ``FAULTS``); unknown names raise ValueError."""
        with self._lock:
            p = self._p
            if name == "split_replies":
                p.split = int(kw.get("count", -1))
                p.split_pause_s = float(kw.get("pause_s", 0.05))
            elif name == "slow":
                p.slow_s = float(kw.get("delay_s", 2.0))
                p.slow_count = int(kw.get("count", -1))
            elif name == "hang":
                p.hang = True
            elif name == "drop_mid_download":
                p.drop_after = int(kw.get("after", 32768))
            elif name == "short_download":
                p.short_missing = int(kw.get("missing", 1))
                p.short_times = int(kw.get("times", 1))
            elif name == "zero_records":
                p.zero_times = int(kw.get("times", 1))
            elif name == "coalesce_events":
                p.coalesce = bool(kw.get("on", True))
            elif name == "grid_reads_only":
                p.grid_only = bool(kw.get("on", True))
            elif name == "segment":
                p.segment_count = int(kw.get("count", 1))
                p.segment_at = int(kw.get("at", 0))
                p.segment_every = int(kw.get("every", 0))
                p.segment_pause_s = float(kw.get("pause_s", 0.002))
                if p.segment_at <= 0 and p.segment_every <= 0:
                    raise ValueError("segment needs at=N or every=N (bytes, > 0)")
            else:
                raise ValueError(f"unknown network fault {name!r}")

    @staticmethod
    def _take(count: int) -> tuple[bool, int]:
        if count == 0:
            return False, 0
        return True, (count - 1 if count > 0 else count)

    def take_split(self) -> float | None:
        """Pause to put between the two halves of the next reply, or None (no split)."""
        with self._lock:
            hit, self._p.split = self._take(self._p.split)
            return self._p.split_pause_s if hit else None

    def take_slow(self) -> float:
        with self._lock:
            hit, self._p.slow_count = self._take(self._p.slow_count)
            return self._p.slow_s if hit else 0.0

    @property
    def hang(self) -> bool:
        return self._p.hang

    @property
    def grid_only(self) -> bool:
        return self._p.grid_only

    @property
    def coalesce(self) -> bool:
        return self._p.coalesce

    def take_drop(self, size: int) -> int | None:
        """Where to cut the next ``size`` bytes of download data, or None (the drop point
        counts across the chunks of one download)."""
        with self._lock:
            after = self._p.drop_after
            if after is None:
                return None
            if after < size:
                self._p.drop_after = None
                return after
            self._p.drop_after = after - size
            return None

    def take_segment(self, size: int) -> tuple[list[int], float] | None:
        """Cut points (offsets into a ``size``-byte bulk answer) and the pause between the
        pieces, or None (the answer goes out frame by frame, as a terminal writes it)."""
        with self._lock:
            p = self._p
            hit, p.segment_count = self._take(p.segment_count)
            if not hit:
                return None
            if p.segment_every > 0:
                cuts = list(range(p.segment_every, size, p.segment_every))
            else:
                cuts = [p.segment_at] if 0 < p.segment_at < size else []
            return cuts, p.segment_pause_s

    def take_short(self) -> int:
        with self._lock:
            hit, self._p.short_times = self._take(self._p.short_times)
            return self._p.short_missing if hit else 0

    def take_zero(self) -> bool:
        with self._lock:
            hit, self._p.zero_times = self._take(self._p.zero_times)
            return hit
