"""Per-process figures from /proc: CPU seconds, peak RSS, bytes written, fsync-ish counts."""

from __future__ import annotations

import os
from pathlib import Path

CLK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def rss_kib(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) in KiB."""
    cur = peak = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            cur = int(line.split()[1])
        elif line.startswith("VmHWM:"):
            peak = int(line.split()[1])
    return cur, peak


def io(pid: int) -> dict[str, int]:
    """/proc/<pid>/io counters (write_bytes = bytes sent to the block layer)."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        k, v = line.split(":")
        out[k] = int(v)
    return out
