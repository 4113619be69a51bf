"""Full-log reconciliation: download the whole log, distrust short downloads, hand it out in
bounded batches, and skip the prefix the store has already committed.

There is no incremental read on these terminals (fananimi/pyzk#62), so every poll is a full
download, deduplicated downstream by content (the deterministic ``event_id``). The
``read_with_buffer(CMD_ATTLOG_RRQ)`` path is used, not ``get_attendance()``: the latter also
downloads every user (and fails with them, fananimi/pyzk#172) and aborts on one bad date
(fananimi/pyzk#221).

Prefix skip (an optimisation, never a cursor): logs only grow at the end, so if the first
*N* bytes of a new download are byte-identical to a download whose records were all
committed in this session, those records are not handed out again. Any change in the prefix
(cyclic delete, clear, rewrite) makes the whole log go out again; ``open()`` and ``pull()``
always hand out everything, so a fresh or replaced store is refilled. The committed prefix
(``Prefix``) also lets ``tail.py`` read only the records after it (issue 14).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from drivers.zk_terminal.codec import CMD_ATTLOG_RRQ, FreeSizes
from drivers.zk_terminal.records import AttLog, AttRecord, RecordIssue, open_attlog

DOWNLOAD_ATTEMPTS = 3


class DesyncError(Exception):
    """pyzk read something that is not the reply it expected (connection out of step)."""


def read_sizes(zk: Any) -> FreeSizes:
    """``zk.read_sizes()`` that notices when pyzk silently kept stale figures (notes §1.5)."""
    zk.records = zk.rec_cap = -1
    zk.read_sizes()
    if zk.records < 0 or zk.rec_cap < 0:
        raise DesyncError("free-sizes reply was shorter than 80 bytes")
    return FreeSizes(
        users=zk.users,
        fingers=zk.fingers,
        records=zk.records,
        cards=zk.cards,
        fingers_cap=zk.fingers_cap,
        users_cap=zk.users_cap,
        rec_cap=zk.rec_cap,
        fingers_av=zk.fingers_av,
        users_av=zk.users_av,
        rec_av=zk.rec_av,
        faces=zk.faces,
        faces_cap=zk.faces_cap,
    )


@dataclass
class Download:
    log: AttLog
    sizes: FreeSizes
    attempts: int
    warnings: list[str] = field(default_factory=list)
    tail_bytes: int | None = None  # a tail read (``tail.py``): the bytes it read


def download(zk: Any, attempts: int = DOWNLOAD_ATTEMPTS) -> Download:
    """Download the log; retry while it holds fewer records than the terminal said.

    After ``attempts`` short downloads the largest one is used (its records are real) and
    the shortfall is reported: dropping it would lose more than keeping it.
    """
    best: Download | None = None
    for attempt in range(1, attempts + 1):
        sizes = read_sizes(zk)
        data, _size = zk.read_with_buffer(CMD_ATTLOG_RRQ)
        log = open_attlog(bytes(data), sizes.records)
        if best is None or log.count > best.log.count:
            best = Download(log, sizes, attempt)
        truncated = any(i.kind == "truncated" for i in log.issues)
        if log.count >= sizes.records and not truncated:
            best.attempts = attempt
            return best
    assert best is not None
    best.attempts = attempts
    best.warnings.append(
        f"log download short after {attempts} attempts: got {best.log.count} of "
        f"{best.sizes.records} records the terminal reported; kept what arrived"
    )
    return best


def _digest(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=16).digest()


#: Bytes of the log's head kept to recognise the same log in a tail read (``tail.py``).
HEAD_CHECK = 4096


@dataclass(frozen=True)
class Prefix:
    """The records committed in this session: ``n_bytes`` of the body, its running hash,
    its first ``HEAD_CHECK`` bytes and its last record."""

    record_size: int
    n_bytes: int
    hasher: Any  # hashlib.blake2b over body[:n_bytes]; ``copy()``-ed to extend
    head: bytes
    last: bytes
    marker: int = 0

    @property
    def digest(self) -> bytes:
        return bytes(self.hasher.digest())


class Reconciler:
    """Holds one downloaded log and a cursor over it; remembers the committed prefix."""

    def __init__(self, batch: int = 5000) -> None:
        self.batch = batch
        self._log: AttLog | None = None
        self._next = 0
        self._committed: Prefix | None = None
        self._handed_out: Prefix | None = None
        self._tail_of: Prefix | None = None
        self.skipped = 0

    def reset(self) -> None:
        """Forget everything (on close/open: the store may have been replaced)."""
        self._log = None
        self._next = 0
        self._committed = self._handed_out = self._tail_of = None

    @property
    def pending(self) -> bool:
        return self._log is not None and self._next < self._log.count

    def load(self, log: AttLog, *, full: bool) -> int:
        """Start handing out ``log``; return how many records will be handed out."""
        self._log, self._next, self.skipped, self._tail_of = log, 0, 0, None
        done = self._committed
        if not full and done is not None:
            rs, n = done.record_size, done.n_bytes
            if (
                rs == log.record_size
                and len(log.body) >= n
                and _digest(log.body[:n]) == done.digest
            ):
                self._next = self.skipped = n // rs
        return log.count - self._next

    def known(self) -> Prefix | None:
        """The committed prefix a tail read may continue (None: download it all)."""
        p = self._committed
        return p if p is not None and p.n_bytes > 0 and not self.pending else None

    def load_tail(self, log: AttLog) -> int:
        """Hand out a tail (``tail.py``) that continues the committed prefix."""
        prev = self._committed
        assert prev is not None and log.base * log.record_size == prev.n_bytes
        self._log, self._next, self.skipped, self._tail_of = log, 0, log.base, prev
        return log.count

    def _extend(self, log: AttLog) -> Prefix:
        rs = log.record_size
        whole = log.body[: log.count * rs]
        prev = self._tail_of
        if prev is None:
            h = hashlib.blake2b(whole, digest_size=16)
            return Prefix(rs, len(whole), h, whole[:HEAD_CHECK], whole[-rs:], log.marker)
        h = prev.hasher.copy()
        h.update(whole)
        last = whole[-rs:] if whole else prev.last
        return Prefix(rs, prev.n_bytes + len(whole), h, prev.head, last, prev.marker)

    def committed(self) -> None:
        """The caller committed everything handed out so far (a new ``read`` began)."""
        if self._handed_out is not None:
            self._committed, self._handed_out = self._handed_out, None

    def next_batch(self, limit: int) -> tuple[list[AttRecord], list[RecordIssue]]:
        log = self._log
        if log is None or limit <= 0:
            return [], []
        stop = min(self._next + min(limit, self.batch), log.count)
        recs, issues = log.records(self._next, stop)
        self._next = stop
        if stop >= log.count:
            self._handed_out = self._extend(log)
            self._log = None
        return recs, issues
