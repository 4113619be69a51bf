"""Fixtures for the gatewayctl tests: the pipeline's ``gateway_factory`` and a CLI runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.pipeline.conftest import gateway_factory  # noqa: F401 - re-exported fixture
from tests.pipeline.harness import GatewayProcess, wait_until


@dataclass
class Result:
    rc: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def run_ctl(config: Path, *args: str, env: dict[str, str] | None = None,
            timeout: float = 120.0) -> Result:
    """``gatewayctl --config CONFIG ARGS`` in a child process (the real console entry)."""
    proc = subprocess.run(
        [sys.executable, "-m", "gateway", "--config", str(config), *args],
        capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def ctl() -> Callable[..., Result]:
    return run_ctl


def socket_of(gp: GatewayProcess) -> Path:
    return gp.config.with_suffix(".sock")


def start_and_wait(gp: GatewayProcess, timeout: float = 30.0) -> GatewayProcess:
    """Start the daemon and wait until its control socket answers."""
    from gateway.ops import control_client as control

    gp.start()
    wait_until(lambda: control.ping(socket_of(gp)) is not None or not gp.running(), timeout,
               "the control socket")
    assert gp.running(), gp.log()
    return gp
