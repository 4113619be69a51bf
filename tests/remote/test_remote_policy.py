"""Issue 16 policy, against the real daemon and broker: while the clock is not synchronised
only ``status`` and ``doctor`` are served; a flood over ``rate_per_min`` is dropped and
counted, every command is accounted for, the link survives and punches still flow."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from gateway.devkit.broker import MosquittoBroker
from gateway.devkit.subscriber import Subscriber
from tests.pipeline.harness import GatewayProcess, wait_until, write_config, write_punch_file
from tests.remote.remote_rig import (
    RES,
    KeyRing,
    audit_rows,
    db_counts,
    publish,
    results,
    wait_result,
)


@pytest.fixture(params=["5"])
def slow_rig(request, tmp_path) -> Iterator[dict]:
    protocol = request.param
    broker = MosquittoBroker(tmp_path / "mosquitto").start()
    keys = KeyRing(tmp_path)
    log = tmp_path / "t1.jsonl"
    write_punch_file(log, 5)
    flag = tmp_path / "synced.flag"  # time_sync = a path: synced while it exists
    cfg = write_config(
        tmp_path / "gw.toml",
        gateway={"data_dir": str(tmp_path / "data"), "control_socket": str(tmp_path / "s"),
                 "time_sync": str(flag)},
        mqtt={"host": "127.0.0.1", "port": broker.port, "protocol": protocol},
        terminals=[{"name": "t1", "driver": "virtual", "file": str(log), "serial": "S1"}])
    cfg.write_text(cfg.read_text() + keys.toml(rate_per_min=60))
    sub = Subscriber("127.0.0.1", broker.port, [RES, "attendance/gw-test/punches"]).start()
    gw = GatewayProcess(cfg, tmp_path / "gw.log").start()
    try:
        wait_until(lambda: "remote commands on" in gw.log(), 60, "remote on")
        yield {"broker": broker, "keys": keys, "sub": sub, "gw": gw, "flag": flag, "log": log,
               "db": tmp_path / "data" / "gateway.db", "config": cfg, "tmp": tmp_path}
    finally:
        if gw.running():
            gw.terminate()
        sub.stop()
        broker.stop()


def _ask(rig: dict, obj: dict) -> dict:
    def answered() -> bool:
        publish(rig["sub"], obj)
        try:
            rig["sub"].wait_for(lambda ms: any(m.topic == RES and m.json().get("id") == obj["id"]
                                               for m in ms), 3)
            return True
        except TimeoutError:
            return False
    wait_until(answered, 60, f"an answer to {obj['verb']}", interval=0.2)
    return wait_result(rig["sub"], obj["id"])


def test_unsynced_clock_serves_status_only_then_everything(slow_rig):
    keys = slow_rig["keys"]
    status = _ask(slow_rig, keys.sign("status"))
    assert status["ok"], status
    punch = {"terminal": "t1", "user_id": "5", "state": "check_in", "reason": "r",
             "time": "2026-11-29T00:00:00Z", "approver": "A"}
    refused = _ask(slow_rig, keys.sign("punch.add", punch))
    assert refused["error"]["kind"] == "clock_unsynced"
    assert db_counts(slow_rig["db"])["manual"] == 0
    slow_rig["flag"].touch()  # NTP synchronised now
    added = _ask(slow_rig, keys.sign("punch.add", punch))
    assert added["ok"] and added["result"]["added"] == 1, added
    assert db_counts(slow_rig["db"])["manual"] == 1
    terms = _ask(slow_rig, keys.sign("terminals"))
    assert terms["ok"]


def test_a_flood_is_rate_limited_counted_and_punches_still_flow(slow_rig):
    sub, keys = slow_rig["sub"], slow_rig["keys"]
    _ask(slow_rig, keys.sign("status"))  # subscribed
    n = 300
    envelopes = [keys.sign("status") for _ in range(n)]
    first = len(results(sub))
    for obj in envelopes:
        publish(sub, obj)
    write_punch_file(slow_rig["log"], 10, start=5)  # punches during the flood
    wait_until(lambda: {f"ev-{i:06d}" for i in range(15)} <= {p["event_id"]
               for p in sub.punches()}, 60, "every punch delivered during the flood")
    ids = {o["id"] for o in envelopes}

    def accounted() -> tuple[int, int]:
        rows = audit_rows(slow_rig["db"])
        answered = sum(1 for r in rows if r["cmd_id"] in ids and r["outcome"] == "done")
        dropped = sum(int(re.match(r"(\d+)", r["detail"]).group(1)) for r in rows
                      if r["outcome"] == "dropped")
        return answered, dropped
    wait_until(lambda: sum(accounted()) == n, 90, "every flooded command accounted for")
    answered, dropped = accounted()
    assert dropped > 0 and answered < n
    got = {r["id"] for r in results(sub)[first:] if r.get("id") in ids}
    assert got <= ids and len(got) == answered  # a result for each one answered
    assert slow_rig["gw"].running()
    after = _ask(slow_rig, keys.sign("status"))  # the link and the thread survived
    assert after["ok"]
    assert json.loads(json.dumps(after))  # plain JSON


@pytest.mark.parametrize("slow_rig", ["3.1.1"], indirect=True)
def test_kill_9_keeps_the_replay_cache_and_311_uses_the_fixed_topic(slow_rig):
    """MQTT 3.1.1 (no Response Topic): results on cmd/res. A command's id survives kill -9:
    the same envelope after the restart gets the stored result, nothing runs twice."""
    slow_rig["flag"].touch()
    keys = slow_rig["keys"]
    punch = {"terminal": "t1", "user_id": "6", "state": "check_out", "reason": "r",
             "time": "2026-11-29T00:30:00Z", "approver": "B"}
    obj = keys.sign("punch.add", punch)
    first = _ask(slow_rig, obj)
    assert first["ok"] and first["result"]["added"] == 1, first
    slow_rig["gw"].kill()
    gw = GatewayProcess(slow_rig["config"], slow_rig["tmp"] / "gw2.log").start()
    try:
        wait_until(lambda: "remote commands on" in gw.log(), 60, "remote on again")
        n = len(results(slow_rig["sub"]))
        def repeated() -> bool:
            publish(slow_rig["sub"], obj)
            try:
                slow_rig["sub"].wait_for(lambda ms: any(
                    m.topic == RES and m.json().get("duplicate") for m in ms[n:]), 3)
                return True
            except TimeoutError:
                return False
        wait_until(repeated, 60, "the stored result after the restart", interval=0.2)
        again = next(r for r in results(slow_rig["sub"])[n:] if r.get("duplicate"))
        assert again["id"] == obj["id"] and again["result"] == first["result"]
        assert db_counts(slow_rig["db"])["manual"] == 1
    finally:
        gw.terminate()
