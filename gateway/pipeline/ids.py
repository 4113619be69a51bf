"""Time-ordered ids (UUIDv7, RFC 9562) for punches that have no deterministic identity.

Card readers have no clock and no log, so their punches get an id minted once, at ingest.
Python 3.11 has no ``uuid.uuid7``; this is the RFC's layout: 48-bit Unix ms, version 7,
12 bits of sub-ms counter for monotonic order inside one process, variant, 62 random bits.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def uuid7(unix_ms: int | None = None) -> uuid.UUID:
    """A new UUIDv7; strictly increasing within this process even inside one millisecond."""
    global _last_ms, _counter  # noqa: PLW0603 - process-wide monotonic state, under _lock
    with _lock:
        ms = time.time_ns() // 1_000_000 if unix_ms is None else unix_ms
        if ms <= _last_ms:
            ms = _last_ms
            _counter += 1
            if _counter > 0xFFF:  # 4096 ids in one ms: borrow the next millisecond
                ms += 1
                _counter = 0
        else:
            _counter = 0
        _last_ms = ms
        rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
        value = (ms & ((1 << 48) - 1)) << 80
        value |= 0x7 << 76
        value |= _counter << 64
        value |= 0b10 << 62
        value |= rand
        return uuid.UUID(int=value)
