"""The real daemon with a restricted profile (huawei-iotda: MQTT 3.1.1, no will, no retain,
the password HMAC'd with the UTC hour) against a platform-like Mosquitto:

* kill -9 of the gateway mid-backlog and a broker kill -9: every punch arrives (PRODUCT.md §7);
* ``doctor`` while the daemon is connected reports the daemon's view and never logs in with
  the device's identity (one connection per device would throw the daemon off, §9);
  with the daemon stopped it logs in as the device.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime

import pytest

from gateway.uplink.profiles import signing
from tests.cli.conftest import run_ctl, start_and_wait
from tests.cloud.cloudlib import RESTRICTED, watch
from tests.pipeline.harness import GatewayProcess, wait_until, write_config, write_punch_file

DEVICE = "pid_gw-test"
SECRET = "12345678"  # test data (the Huawei doc's example secret)
PUNCHES = f"$oc/devices/{DEVICE}/user/punches"


def _ids(sub) -> set[str]:
    return {p["event_id"] for m in sub.messages if m.topic == PUNCHES for p in m.json()["punches"]}


def test_huawei_daemon_kill9_outage_and_doctor(tmp_path, mosquitto_factory, subscriber):
    if datetime.now(UTC).minute >= 58:
        pytest.skip("the Huawei password changes on the hour; rerun in two minutes")
    ts = signing.huawei_timestamp(time.time())
    acl = (f"user {DEVICE}\ntopic write $oc/devices/{DEVICE}/user/#\n"
           "user watcher\ntopic read #\ntopic read $oc/#\n")  # fmt: skip
    broker = mosquitto_factory(plain=False, auth=True, acl=acl, message_size_limit=1024 * 1024,
                               users={DEVICE: signing.huawei_password(SECRET, ts),
                                      "watcher": "watcher-pass"}, **RESTRICTED)  # fmt: skip
    sub = watch(subscriber, broker.auth_port)
    secret = tmp_path / "iotda.secret"
    secret.write_text(SECRET + "\n")
    os.chmod(secret, 0o600)
    log = tmp_path / "terminal.jsonl"
    ids = write_punch_file(log, 300)
    cfg = write_config(
        tmp_path / "gw.toml",
        gateway={"data_dir": str(tmp_path / "data"), "control_socket": str(tmp_path / "gw.sock"),
                 "health_interval_s": 1},
        mqtt={"host": "127.0.0.1", "port": broker.auth_port, "profile": "huawei-iotda",
              "keepalive_s": 30, "max_publish_rate": 20, "batch_max_punches": 5,
              "huawei-iotda": {"device_id": DEVICE, "secret_file": str(secret)}},
        terminals=[{"name": "file", "driver": "virtual", "file": str(log)}],
    )  # fmt: skip
    gp = GatewayProcess(cfg, tmp_path / "gw.log").start()
    try:
        wait_until(lambda: len(_ids(sub)) >= 20, 60, "the first punches")
        gp.kill()  # kill -9 with a backlog in the store and messages in flight
        ids += write_punch_file(log, 100, start=300)
        gp = GatewayProcess(cfg, tmp_path / "gw.log")
        start_and_wait(gp)
        broker.restart(hard=True)  # and a broker crash while it drains
        wait_until(lambda: _ids(sub) >= set(ids), 120, f"all {len(ids)} punches")
        assert _ids(sub) == set(ids)
        assert not any(m.retain for m in sub.messages)
        sub.wait_for_count(2, f"$oc/devices/{DEVICE}/user/status", timeout=30)
        # doctor while connected: the daemon's view, no second login as the device
        wait_until(lambda: _connected(cfg), 30, "the daemon connected")
        before = broker.log_text().count(f" as {DEVICE}_0_1_")
        r = run_ctl(cfg, "doctor", "--json")
        checks = {c["name"]: c for c in json.loads(r.out)["checks"]}
        assert checks["broker login"]["status"] == "PASS"
        assert "not logging in a second time" in checks["broker login"]["detail"]
        assert "retain no" in checks["broker capabilities"]["detail"]
        assert broker.log_text().count(f" as {DEVICE}_0_1_") == before
    finally:
        if gp.running():
            gp.terminate()
    # daemon stopped: doctor logs in as the device, with the computed password
    r = run_ctl(cfg, "doctor", "--json")
    checks = {c["name"]: c for c in json.loads(r.out)["checks"]}
    assert checks["broker login"]["status"] == "PASS", checks["broker login"]
    assert "login accepted" in checks["broker login"]["detail"]


def _connected(cfg) -> bool:
    r = run_ctl(cfg, "status", "--json")
    try:
        return bool(json.loads(r.out)["broker"]["connected"])
    except (ValueError, KeyError):
        return False


def test_aws_daemon_mtls_will_kill9_and_broker_crash(tmp_path, mosquitto_factory, subscriber):
    """aws-iot: mutual TLS (the certificate is the identity), retained status and a will are
    allowed: a gateway kill -9 makes the broker publish the retained "offline" will; a broker
    kill -9 while draining loses nothing."""
    prefix = "attendance/gw-test"
    acl = (f"user test-client\ntopic write {prefix}/#\n"
           "user watcher\ntopic read #\n")  # fmt: skip
    per_listener = "max_qos 1\nuse_identity_as_username true"  # the certificate is the user
    broker = mosquitto_factory(plain=False, auth=True, tls=True, tls_auth=True,
                               tls_require_client_cert=True, acl=acl,
                               users={"watcher": "watcher-pass"}, message_size_limit=128 * 1024,
                               listener_config=per_listener)  # fmt: skip
    sub = watch(subscriber, broker.auth_port)
    log = tmp_path / "terminal.jsonl"
    ids = write_punch_file(log, 300)
    cfg = write_config(
        tmp_path / "gw.toml",
        gateway={"data_dir": str(tmp_path / "data"), "control_socket": str(tmp_path / "gw.sock"),
                 "health_interval_s": 1},
        mqtt={"host": "localhost", "port": broker.tls_port, "tls": True, "profile": "aws-iot",
              "ca_file": str(broker.ca_file), "cert_file": str(broker.client_cert),
              "key_file": str(broker.client_key), "keepalive_s": 5, "max_publish_rate": 20,
              "batch_max_punches": 5, "aws-iot": {"thing_name": "gw-test"}},
        terminals=[{"name": "file", "driver": "virtual", "file": str(log)}],
    )  # fmt: skip
    punches = f"{prefix}/punches"

    def got() -> set[str]:
        return {p["event_id"] for m in sub.messages if m.topic == punches
                for p in m.json()["punches"]}  # fmt: skip

    gp = GatewayProcess(cfg, tmp_path / "gw.log").start()
    try:
        wait_until(lambda: len(got()) >= 20, 60, "the first punches")
        gp.kill()
        sub.wait_for(lambda ms: any(m.topic == f"{prefix}/status" and m.json()["state"] ==
                                    "offline" for m in ms), timeout=60)  # the will  # fmt: skip
        ids += write_punch_file(log, 100, start=300)
        gp = GatewayProcess(cfg, tmp_path / "gw.log")
        start_and_wait(gp)
        wait_until(lambda: len(got()) >= 100, 60, "draining again")
        broker.restart(hard=True)
        wait_until(lambda: got() >= set(ids), 120, f"all {len(ids)} punches")
        late = watch(subscriber, broker.auth_port)
        late.wait_for(lambda ms: any(m.retain and m.topic == f"{prefix}/status" for m in ms), 30)
    finally:
        if gp.running():
            gp.terminate()
