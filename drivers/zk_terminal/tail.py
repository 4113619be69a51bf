"""Tail read: fetch only the records after the committed prefix (issue 14, light touch).

The buffered read (notes §1.4) prepares the whole log on the terminal (``_CMD_PREPARE_BUFFER``
1503) and then hands out any byte range of it (``_CMD_READ_BUFFER`` 1504 with ``start,
size``); pyzk's ``read_with_buffer`` simply reads every range from 0. When this session has
committed the first *N* records, only three ranges are needed:

* the log's head (its first ``HEAD_CHECK`` bytes), compared with the head read before: a
  cyclic delete or a cleared-and-refilled log shows there;
* the last committed record and everything after it: the record must be byte-identical
  (the log still continues what was committed), the rest is new.

A log shorter than the prefix, a head or boundary that differs, a range of the wrong length,
a terminal that answers the prepare directly: ``None``, and the caller downloads the whole
log as before (the committed-prefix digest then decides what is handed out again). Logs only
grow at the end (records are never edited in place), and the full download every
``full_download_interval_s`` re-checks the whole prefix anyway.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from drivers.zk_terminal.codec import CMD_ATTLOG_RRQ, CMD_DATA, CMD_PREPARE_BUFFER
from drivers.zk_terminal.reconcile import Download, Prefix, read_sizes
from drivers.zk_terminal.records import AttLog, RecordIssue

#: pyzk's chunk sizes for READ_BUFFER (``read_with_buffer``: 0xFFC0 on TCP, 16 KiB on UDP).
TCP_CHUNK, UDP_CHUNK = 0xFFC0, 16 * 1024


@dataclass(frozen=True)
class Tail:
    """What a tail read fetched: the new records, and the bytes it cost."""

    log: AttLog
    bytes_read: int


def download_tail(zk: Any, known: Prefix, *, tcp: bool) -> tuple[Download | None, bool]:
    """``reconcile.download`` for the records after ``known``. ``(None, checks_failed)``:
    download it all — also, with ``checks_failed`` False, when the terminal counts more
    records than the tail holds (a punch in between: the full path retries)."""
    sizes = read_sizes(zk)
    size = _prepare(zk)
    if size is None:
        return None, False  # a small log answered at once: read it whole, nothing wrong
    tail = read_tail(zk, known, size, tcp=tcp)
    if tail is None:
        return None, True
    if tail.log.total < sizes.records:
        return None, False
    return Download(tail.log, sizes, 1, tail_bytes=tail.bytes_read), False


def read_tail(zk: Any, known: Prefix, size: int, *, tcp: bool) -> Tail | None:
    """The records after ``known`` from a log prepared on the terminal (``size``: its
    dataset bytes), or None (then download the whole log). Frees the terminal's buffer."""
    try:
        rs, n, off = known.record_size, known.n_bytes, 4 + known.marker
        body_len = size - off
        if body_len < n:
            return None  # shorter than what was committed: cleared or rotated
        chunk = TCP_CHUNK if tcp else UDP_CHUNK
        head = _read(zk, off, len(known.head), chunk)
        if head != known.head:
            return None
        rest = _read(zk, off + n - rs, body_len - n + rs, chunk)
        if rest is None or rest[:rs] != known.last:
            return None
        return Tail(_tail_log(rest[rs:], rs, n // rs, body_len), len(head) + len(rest))
    finally:
        zk.free_data()


def _prepare(zk: Any) -> int | None:
    """Prepare the log on the terminal; its dataset size (u32 total + body), or None."""
    payload = struct.pack("<bhii", 1, CMD_ATTLOG_RRQ, 0, 0)
    reply = zk._ZK__send_command(CMD_PREPARE_BUFFER, payload, 1024)
    if not reply.get("status"):
        raise ValueError(f"terminal refused the buffered read (reply {reply.get('code')})")
    if reply.get("code") == CMD_DATA:
        # A small log answered at once (notes §1.4 (a)): take the rest of the frame off the
        # socket as pyzk does, and let the caller download it the usual way.
        data = bytes(zk._ZK__data)
        need = getattr(zk, "_ZK__tcp_length", 0) - 8 - len(data)
        if zk.tcp and need > 0:
            zk._ZK__recieve_raw_data(need)
        return None
    data = bytes(zk._ZK__data)
    if len(data) < 5:
        raise ValueError("buffered-read answer without a size")
    size: int = struct.unpack_from("<I", data, 1)[0]
    return size


def _read(zk: Any, start: int, size: int, chunk: int) -> bytes | None:
    out = []
    pos, end = start, start + size
    while pos < end:
        n = min(chunk, end - pos)
        part = bytes(zk._ZK__read_chunk(pos, n))
        if len(part) != n:
            return None
        out.append(part)
        pos += n
    return b"".join(out)


def _tail_log(body: bytes, rs: int, base: int, body_len: int) -> AttLog:
    count, trailing = divmod(len(body), rs)
    issues = []
    if trailing:
        issues.append(
            RecordIssue(
                base + count,
                "trailing",
                f"{trailing} bytes after the last whole {rs}-byte record",
                body[count * rs :].hex(),
            )
        )
    return AttLog(body[: count * rs], rs, count, body_len, issues, base)
