"""gatewayctl storage show|ack: the corrupt-database note behind fault 4."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from gateway.store.guard import StorageGuard, open_store
from tests.pipeline.harness import write_config


def _ctl(cfg: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", "--config", str(cfg), *argv],
                          capture_output=True, text=True, timeout=60)


def test_show_then_ack_clears_fault_4(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    db = data / "gateway.db"
    db.write_bytes(os.urandom(32 * 1024))  # a corrupt database, as after a bad power cut
    store, note = open_store(db)
    store.close()
    assert note is not None
    cfg = write_config(tmp_path / "gw.toml", gateway={"data_dir": str(data)},
                       mqtt={"host": "127.0.0.1", "port": 1}, terminals=[])
    shown = _ctl(cfg, "--json", "storage", "show")
    assert shown.returncode == 1, shown.stderr
    info = json.loads(shown.stdout)["quarantine"]
    moved = [p for p in data.iterdir() if ".corrupt-" in p.name]
    assert moved and any(p.name in json.dumps(info) for p in moved)
    human = _ctl(cfg, "storage", "ack")
    assert human.returncode == 0 and "fault 4 cleared" in human.stdout
    again = _ctl(cfg, "--json", "storage", "show")
    assert again.returncode == 0 and json.loads(again.stdout)["quarantine"] is None
    store, _ = open_store(db)
    with store:
        assert StorageGuard(store).fault() is None
    assert moved[0].exists()  # acknowledged, never deleted
