"""Fixtures for end-to-end tests of the daemon as a real child process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.pipeline.harness import GatewayProcess, write_config


@pytest.fixture
def gateway_factory(tmp_path: Path) -> Iterator[Callable[..., GatewayProcess]]:
    """``gateway_factory(mqtt={...}, terminals=[...], ...)`` -> an unstarted GatewayProcess."""
    made: list[GatewayProcess] = []

    def make(*, mqtt: dict[str, Any], terminals: list[dict[str, Any]],
             gateway: dict[str, Any] | None = None, store: dict[str, Any] | None = None,
             env: dict[str, str] | None = None, name: str = "gw") -> GatewayProcess:
        data = tmp_path / f"{name}-data"
        cfg = write_config(
            tmp_path / f"{name}.toml",
            gateway={"data_dir": str(data), "control_socket": str(tmp_path / f"{name}.sock"),
                     **(gateway or {})},
            mqtt=mqtt, terminals=terminals, store=store,
        )
        gp = GatewayProcess(cfg, tmp_path / f"{name}.log", env)
        made.append(gp)
        return gp

    yield make
    for gp in made:
        if gp.running():
            gp.kill()
