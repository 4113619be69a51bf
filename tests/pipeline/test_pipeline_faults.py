"""Issue 2: kill -9 mid-drain, and messages the broker refuses for good."""

from __future__ import annotations

import json
import random
import sqlite3
import time
from pathlib import Path

import pytest

from tests.pipeline.harness import wait_until, write_punch_file

PREFIX = "attendance/gw-test"


def _terminal(path: Path) -> dict[str, object]:
    return {"name": "t1", "driver": "virtual", "file": str(path), "serial": "SN1"}


def _rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    """Query the daemon's store read-only; [] while it does not exist yet (or has no tables:
    the file appears a moment before the daemon's first migration commits)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
            return c.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []


@pytest.mark.slow
def test_sigkill_mid_drain_loses_nothing(tmp_path, mosquitto, subscriber, tcp_proxy,
                                         gateway_factory):
    """SIGKILL at random moments while draining: every committed punch arrives afterwards."""
    proxy = tcp_proxy(mosquitto.port)
    proxy.set_latency(0.01)  # a slow link, so the kills land mid-drain
    sub = subscriber(mosquitto.port, f"{PREFIX}/punches")
    log = tmp_path / "t1.jsonl"
    ids = write_punch_file(log, 3000)
    db = tmp_path / "gw-data" / "gateway.db"
    mqtt = {"host": "127.0.0.1", "port": proxy.port, "max_inflight": 2,
            "batch_max_punches": 10}
    rng = random.Random(20261123)
    kills = 0
    for round_ in range(5):
        gw = gateway_factory(mqtt=mqtt, terminals=[_terminal(log)], name=f"gw{round_}")
        gw.config.write_text(gw.config.read_text().replace(f"gw{round_}-data", "gw-data"))
        gw.start()
        time.sleep(rng.uniform(0.8, 2.5))
        if round_ < 4:
            gw.kill()
            if _rows(db, "SELECT count(*) FROM punches WHERE status=0") not in ([], [(0,)]):
                kills += 1  # killed with a backlog still pending: a real mid-drain kill
            ids += write_punch_file(log, 50, start=3000 + 50 * round_)  # arrives while down
            continue
        want = set(ids)  # duplicates are expected after a kill: wait for every id
        sub.wait_for(lambda _: want <= {p["event_id"] for p in sub.punches()}, timeout=120)
        punches = sub.punches()
        assert gw.terminate() == 0
    got = {p["event_id"] for p in punches}
    assert got == set(ids), f"missing {sorted(set(ids) - got)[:10]}"
    assert sorted({p["seq"] for p in punches}) == list(range(1, len(ids) + 1))
    assert _rows(db, "PRAGMA integrity_check") == [("ok",)]
    assert _rows(db, "SELECT count(*) FROM punches WHERE status != 1") == [(0,)]
    assert kills >= 2, "the kills should land while a backlog is draining"


@pytest.mark.parametrize("limit", ["message_size_limit", "max_packet_size"])
def test_oversized_punch_is_dead_lettered_and_the_rest_flow(tmp_path, mosquitto_factory,
                                                            subscriber, gateway_factory, limit):
    broker = mosquitto_factory(**{limit: 6000})
    sub = subscriber(broker.port, "attendance/#")
    log = tmp_path / "t1.jsonl"
    ids = write_punch_file(log, 120, extra={60: {"note": "x" * 20000}})
    gw = gateway_factory(mqtt={"host": "127.0.0.1", "port": broker.port},
                         terminals=[_terminal(log)])
    with gw:
        punches = sub.wait_for_punches(119, timeout=90)
        db = tmp_path / "gw-data" / "gateway.db"
        wait_until(lambda: _rows(db, "SELECT count(*) FROM punches WHERE status=2") == [(1,)],
                   30, "one dead letter")
        wait_until(lambda: any(f["code"] == 6 for f in _health(sub)["faults"]), 30,
                   "fault 6 in health")
        assert gw.terminate() == 0
    assert {p["event_id"] for p in punches} == set(ids) - {"ev-000060"}
    (reason,) = _rows(db, "SELECT dead_reason FROM punches WHERE status=2")[0]
    assert reason
    assert _rows(db, "SELECT event_id FROM punches WHERE status=2") == [("ev-000060",)]


def test_acl_denied_topic_dead_letters_not_blocks(tmp_path, mosquitto_factory, subscriber,
                                                  gateway_factory):
    """MQTT 5 PUBACK 'Not authorized': dead-lettered (kept, re-sendable), fault 6, no loop."""
    acl = (f"user gw\ntopic write {PREFIX}/status\ntopic write {PREFIX}/health\n"
           f"topic write {PREFIX}/terminals/#\n")
    broker = mosquitto_factory(auth=True, users={"gw": "s3cret", "sub": "sub"},
                               acl=acl + "user sub\ntopic read #\n")
    pw = tmp_path / "mqtt.password"
    pw.write_text("s3cret\n")
    pw.chmod(0o600)
    sub = subscriber(broker.auth_port, "attendance/#", username="sub", password="sub")
    log = tmp_path / "t1.jsonl"
    write_punch_file(log, 30)
    gw = gateway_factory(mqtt={"host": "127.0.0.1", "port": broker.auth_port, "username": "gw",
                               "password_file": str(pw)},
                         terminals=[_terminal(log)])
    with gw:
        db = tmp_path / "gw-data" / "gateway.db"
        wait_until(lambda: _rows(db, "SELECT count(*) FROM punches WHERE status=2") == [(30,)],
                   60, "30 dead letters")
        wait_until(lambda: any(f["code"] == 6 for f in _health(sub)["faults"]), 30, "fault 6")
        assert gw.running()
        assert gw.terminate() == 0
    assert "s3cret" not in gw.log()
    assert not sub.punches()
    reasons = {r[0] for r in _rows(db, "SELECT dead_reason FROM punches WHERE status=2")}
    assert all("Not authorized" in r for r in reasons)


def _health(sub) -> dict:
    m = sub.retained(f"{PREFIX}/health")
    return json.loads(m.payload) if m else {"faults": []}
