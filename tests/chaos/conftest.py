"""Chaos fixtures: tiny filesystems (tmpfs with ``size=``), chaos round counts, figures.

``CHAOS_ROUNDS`` (environment) scales the rounds of the repeated scenarios: the CI default is
small; ``make chaos-long`` sets it to 50. Figures of every scenario are appended as JSON lines
to ``$CHAOS_FIGURES`` (default ``<tmp>/chaos-figures.jsonl``) and printed, so the long run's
numbers can be copied into docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


def rounds(ci_default: int, long_cap: int | None = None) -> int:
    """How many rounds a repeated scenario runs: ``CHAOS_ROUNDS`` overrides the CI default,
    capped at ``long_cap`` for scenarios whose rounds are long (blackhole: ~10 s each)."""
    raw = os.environ.get("CHAOS_ROUNDS")
    if not raw:
        return ci_default
    n = max(1, int(raw))
    return min(n, long_cap) if long_cap else n


def long_run() -> bool:
    return bool(os.environ.get("CHAOS_ROUNDS")) or os.environ.get("CHAOS_LONG") == "1"


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Callable[..., None]:
    """``figures(scenario, **numbers)``: print and record one line of the reliability table."""

    def record(scenario: str, **numbers: Any) -> None:
        line = {"scenario": scenario, "test": request.node.nodeid, **numbers}
        print(f"\nCHAOS FIGURES {json.dumps(line)}")
        out = os.environ.get("CHAOS_FIGURES")
        if out:
            with open(out, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(line) + "\n")

    return record


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Callable[[int], Path]]:
    """``tiny_fs(size_kb)`` -> a directory on its own tmpfs of that size (root only)."""
    mounts: list[Path] = []

    def make(size_kb: int) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a small tmpfs needs root (run the chaos suite as root)")
        d = tmp_path / f"tinyfs-{uuid.uuid4().hex[:6]}"
        d.mkdir()
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k,mode=0755", "tmpfs", str(d)],
            capture_output=True,
            text=True,
            check=False,
        )
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
        mounts.append(d)
        return d

    yield make
    for d in mounts:
        subprocess.run(["umount", "-l", str(d)], check=False)


def fill(directory: Path, leave_kb: int = 0) -> Path:
    """Fill ``directory``'s filesystem until at most ``leave_kb`` KiB are free; the filler."""
    filler = directory / "filler.bin"
    st = os.statvfs(directory)
    free = st.f_bavail * st.f_frsize
    want = max(0, free - leave_kb * 1024)
    with filler.open("ab") as fh:
        chunk = b"\0" * 65536
        try:
            while want > 0:
                n = fh.write(chunk[: min(len(chunk), want)])
                want -= n
            fh.flush()
            os.fsync(fh.fileno())
        except OSError:
            pass  # full already: that is the point
    return filler


def free_kb(directory: Path) -> int:
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize // 1024
