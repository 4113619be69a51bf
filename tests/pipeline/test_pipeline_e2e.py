"""Issue 2, end to end: the real daemon process, a real mosquitto, a real subscriber."""

from __future__ import annotations

import itertools
import json
import sqlite3
from pathlib import Path

import pytest

from tests.pipeline.harness import validate, wait_until, write_punch_file

PREFIX = "attendance/gw-test"


def _file_terminal(path: Path, name: str = "t1") -> dict[str, object]:
    return {"name": name, "driver": "virtual", "file": str(path), "serial": f"SN-{name}"}


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_every_punch_arrives_valid_gap_free_unique(tmp_path, mosquitto, subscriber,
                                                   gateway_factory, protocol):
    sub = subscriber(mosquitto.port, "attendance/#")
    log = tmp_path / "t1.jsonl"
    ids = write_punch_file(log, 600)
    gw = gateway_factory(mqtt={"host": "127.0.0.1", "port": mosquitto.port,
                               "protocol": protocol},
                         terminals=[_file_terminal(log)])
    with gw:
        punches = sub.wait_for_punches(600, timeout=60)
        wait_until(lambda: sub.retained(f"{PREFIX}/health") is not None, 30, "health")
        wait_until(lambda: sub.retained(f"{PREFIX}/terminals/t1/status") is not None, 30,
                   "terminal status")
        assert gw.terminate() == 0

    for batch in sub.batches():
        validate(batch, "punches.schema.json")
        assert len(batch["punches"]) <= 50
    seqs = sorted({p["seq"] for p in punches})
    assert seqs == list(range(1, 601)), "seq must be gap-free from 1"
    assert sorted({p["event_id"] for p in punches}) == sorted(ids)
    by_id = {p["event_id"]: p for p in punches}
    assert all(by_id[e]["seq"] < by_id[f]["seq"] for e, f in itertools.pairwise(ids))
    assert by_id["ev-000000"]["time"] == "2026-11-23T08:00:00+08:00"  # naive local time + zone
    validate(json.loads(sub.retained(f"{PREFIX}/health").payload), "health.schema.json")
    validate(json.loads(sub.retained(f"{PREFIX}/terminals/t1/status").payload),
             "terminal-status.schema.json")
    statuses = [json.loads(m.payload) for m in sub.on(f"{PREFIX}/status")]
    for s in statuses:
        validate(s, "status.schema.json")
    assert statuses[0]["state"] == "online" and statuses[-1]["state"] == "offline"


def test_sigterm_exits_0_publishes_offline_and_loses_nothing(tmp_path, mosquitto, subscriber,
                                                              tcp_proxy, gateway_factory):
    """SIGTERM while a backlog is stuck behind a black-holed link: exit 0, nothing lost."""
    proxy = tcp_proxy(mosquitto.port)
    sub = subscriber(mosquitto.port, "attendance/#")
    log = tmp_path / "t1.jsonl"
    ids = write_punch_file(log, 200)
    mqtt = {"host": "127.0.0.1", "port": proxy.port}
    gw = gateway_factory(mqtt=mqtt, terminals=[_file_terminal(log)])
    with gw:
        sub.wait_for_punches(200, timeout=60)
        db = tmp_path / "gw-data" / "gateway.db"
        wait_until(lambda: _count(db, "status=1") == 200, 30, "200 acked")
        proxy.blackhole()  # the WAN silently drops everything
        ids += write_punch_file(log, 100, start=200)
        wait_until(lambda: _count(db, "status=0") == 100, 30, "100 stored, pending")
        assert gw.terminate(timeout=25) == 0
    assert "stopped" in gw.log()
    assert _count(tmp_path / "gw-data" / "gateway.db", "status=0") >= 1  # still pending, kept
    proxy.restore(discard=True)
    with gateway_factory(mqtt=mqtt, terminals=[_file_terminal(log)]) as gw2:
        punches = sub.wait_for_punches(300, timeout=60)
        assert {p["event_id"] for p in punches} == set(ids)
        assert gw2.terminate() == 0
    last = sub.retained(f"{PREFIX}/status")
    assert last is not None and json.loads(last.payload)["state"] == "offline"


@pytest.mark.slow
def test_broker_down_30s_then_backlog_drains_without_new_punch(tmp_path, mosquitto, subscriber,
                                                               tcp_proxy, gateway_factory):
    proxy = tcp_proxy(mosquitto.port)  # lets the test hold the gateway back after the restart
    sub = subscriber(mosquitto.port, "attendance/#")
    log = tmp_path / "t1.jsonl"
    ids = write_punch_file(log, 300)
    gw = gateway_factory(mqtt={"host": "127.0.0.1", "port": proxy.port},
                         terminals=[_file_terminal(log)])
    with gw:
        sub.wait_for_punches(300, timeout=60)
        mosquitto.stop()
        ids += write_punch_file(log, 500, start=300)  # mid-stream: punches keep coming
        db = tmp_path / "gw-data" / "gateway.db"
        wait_until(lambda: _count(db, "status=0") == 500, 30, "backlog stored")
        import time

        time.sleep(30)
        proxy.refuse()
        mosquitto.start()
        wait_until(lambda: sub.connected, 30, "subscriber back")
        proxy.restore()  # no new punch from here on: only on-connect / the timer can drain
        punches = sub.wait_for_punches(800, timeout=60)
        assert {p["event_id"] for p in punches} == set(ids)
        assert sorted({p["seq"] for p in punches}) == list(range(1, 801))
        assert _count(db, "status=0") == 0 or wait_until(
            lambda: _count(db, "status=0") == 0, 10, "all marked delivered") is None
        assert gw.terminate() == 0


def _count(db: Path, where: str) -> int:
    """Rows matching ``where`` in the daemon's store; -1 while it has no tables yet."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
            return int(c.execute(f"SELECT count(*) FROM punches WHERE {where}").fetchone()[0])
    except sqlite3.OperationalError:
        return -1
