"""``make test-systemd`` only (issue 12): a booted Debian container with the gateway installed.

Plain ``make test`` does not collect this folder: it needs root, systemd-nspawn and a cached
debootstrap root that ``scripts/test-systemd.sh`` builds, then runs pytest here with
``ATTGW_SYSTEMD_TEST=1``, ``ATTGW_NSPAWN_ROOT`` and ``ATTGW_NSPAWN_BUNDLE`` set.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.systemd.container import Container

REPO = Path(__file__).resolve().parents[2]

if os.environ.get("ATTGW_SYSTEMD_TEST") != "1":
    collect_ignore_glob = ["test_*.py"]

#: Where the checkout goes inside, as docs/install.md §2 has the technician clone it.
CHECKOUT = "/home/tech/attendance-gateway"
BUNDLE = "/home/tech/bundle"  # the offline bundle (docs/install.md §3)


def _copy_checkout(dest: Path) -> None:
    """The working tree as a ``git clone`` would give it (uncommitted edits included)."""
    dest.mkdir(parents=True, exist_ok=True)
    excludes = [
        "./.venv",
        "./.git",
        "./.pi-root",
        "./.demo",
        "__pycache__",
        "*.egg-info",
        "./.mypy_cache",
        "./.ruff_cache",
        "./.pytest_cache",
        "./.hypothesis",
        "./build",
        "./dist",
    ]
    tar = ["tar", "-C", str(REPO), *[f"--exclude={e}" for e in excludes], "-cf", "-", "."]
    with subprocess.Popen(tar, stdout=subprocess.PIPE) as src:
        subprocess.run(["tar", "-C", str(dest), "-xf", "-"], stdin=src.stdout, check=True)
    if src.returncode:
        raise RuntimeError("tar of the checkout failed")


@pytest.fixture(scope="module")
def ct() -> Iterator[Container]:
    lower = Path(os.environ["ATTGW_NSPAWN_ROOT"])
    (bundle,) = Path(os.environ["ATTGW_NSPAWN_BUNDLE"]).glob("attendance-gateway-offline-*/")
    scratch = Path(tempfile.mkdtemp(prefix="attgw-nspawn-", dir="/var/tmp"))
    c = Container(lower, scratch)
    c.mount()
    try:
        _copy_checkout(c.root / CHECKOUT.lstrip("/"))
        shutil.copytree(bundle, c.root / BUNDLE.lstrip("/"))
        c.boot()
        c.sh(f"chown -R tech:tech {CHECKOUT} {BUNDLE}")
        yield c
    finally:
        keep = os.environ.get("ATTGW_SYSTEMD_KEEP_LOG")
        if keep:
            shutil.copy(c.boot_log, keep)
            if c.init_pid:  # the unit's journal of every boot, for a failed run
                j = c.sh("journalctl -u attendance-gateway --no-pager", check=False)
                Path(keep).with_name("last-journal.log").write_text(j.stdout)
        c.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Keep each phase's report on the item, so a failing test can print the journal."""
    outcome = yield
    rep = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{rep.when}", rep)
